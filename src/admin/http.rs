//! The little HTTP/1.1 the operations endpoints need: one GET per connection, answered
//! and closed. Sans-IO: `parse_request` takes the bytes read so far, `encode_response`
//! gives the bytes to write.

/// The most bytes of request line and headers accepted; browsers, curl and Prometheus
/// send a few hundred.
pub const REQUEST_BYTES_MAX: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path, percent-decoding left to the router (command names need none).
    pub path: String,
    /// `name=value` pairs of the query string, in order.
    pub query: Vec<(String, String)>,
}

impl Request {
    pub fn query_value(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// More than `REQUEST_BYTES_MAX` without the blank line that ends the headers.
    TooLarge,
    Malformed(&'static str),
}

/// The request in `bytes` once its headers are complete; None while more must be read.
pub fn parse_request(bytes: &[u8]) -> Result<Option<Request>, ParseError> {
    let Some(end) = bytes.windows(4).position(|window| window == b"\r\n\r\n") else {
        if bytes.len() > REQUEST_BYTES_MAX {
            return Err(ParseError::TooLarge);
        }
        return Ok(None);
    };
    if end > REQUEST_BYTES_MAX {
        return Err(ParseError::TooLarge);
    }
    let head = std::str::from_utf8(&bytes[..end]).map_err(|_| ParseError::Malformed("not UTF-8"))?;
    let request_line = head.lines().next().ok_or(ParseError::Malformed("no request line"))?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::Malformed("the request line is not METHOD TARGET VERSION"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(ParseError::Malformed("not HTTP/1.x"));
    }
    if !target.starts_with('/') {
        return Err(ParseError::Malformed("the target is not a path"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (name.to_owned(), value.to_owned())
        })
        .collect();
    Ok(Some(Request { method: method.to_owned(), path: path.to_owned(), query }))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response { status, content_type, body: body.into() }
    }

    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response::new(status, "text/plain; charset=utf-8", body.into())
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// The response's bytes (without the body for a HEAD request); the connection closes
/// after it.
pub fn encode_response(response: &Response, head_only: bool) -> Vec<u8> {
    let mut bytes = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    )
    .into_bytes();
    if !head_only {
        bytes.extend_from_slice(&response.body);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_parsed_once_its_headers_end() {
        assert_eq!(parse_request(b"GET /commands/stat HTTP/1.1\r\nHost: x\r\n"), Ok(None));
        let request = parse_request(b"GET /commands/stmk?traceMask=5&x HTTP/1.1\r\nHost: x\r\n\r\n").unwrap().unwrap();
        assert_eq!((request.method.as_str(), request.path.as_str()), ("GET", "/commands/stmk"));
        assert_eq!(request.query_value("traceMask"), Some("5"));
        assert_eq!(request.query_value("x"), Some(""));
    }

    #[test]
    fn oversized_or_malformed_requests_are_refused() {
        assert_eq!(parse_request(&vec![b'a'; REQUEST_BYTES_MAX + 1]), Err(ParseError::TooLarge));
        assert!(matches!(parse_request(b"GET\r\n\r\n"), Err(ParseError::Malformed(_))));
        assert!(matches!(parse_request(b"GET commands HTTP/1.1\r\n\r\n"), Err(ParseError::Malformed(_))));
        assert!(matches!(parse_request(b"GET / SMTP\r\n\r\n"), Err(ParseError::Malformed(_))));
    }

    #[test]
    fn a_response_states_its_length_and_closes() {
        let bytes = encode_response(&Response::text(503, "not ready\n"), false);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(text.contains("Content-Length: 10\r\n") && text.contains("Connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\nnot ready\n"));
        let head = String::from_utf8(encode_response(&Response::text(200, "ready\n"), true)).unwrap();
        assert!(head.contains("Content-Length: 6\r\n") && head.ends_with("\r\n\r\n"), "{head}");
    }
}
