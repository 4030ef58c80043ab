//! Just enough DER to walk to a certificate's subject: tag-length-value elements with
//! single-byte tags and definite lengths. Sans-IO; every malformed input is an error.

/// One element: its tag, its content, and its whole encoding (tag, length, content).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Element<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    pub encoding: &'a [u8],
}

pub const TAG_SEQUENCE: u8 = 0x30;
pub const TAG_SET: u8 = 0x31;
pub const TAG_OID: u8 = 0x06;
pub const TAG_OCTET_STRING: u8 = 0x04;
/// `[0] EXPLICIT`, the optional version before a certificate's serial number.
pub const TAG_CONTEXT_0: u8 = 0xA0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DerError(pub &'static str);

impl std::fmt::Display for DerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed DER: {}", self.0)
    }
}

/// Reads the element at the start of `input`; returns it and what follows it.
pub fn read(input: &[u8]) -> Result<(Element<'_>, &[u8]), DerError> {
    let (&tag, rest) = input.split_first().ok_or(DerError("truncated tag"))?;
    if tag & 0x1F == 0x1F {
        return Err(DerError("multi-byte tag"));
    }
    let (&first, rest) = rest.split_first().ok_or(DerError("truncated length"))?;
    let (length, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let count = (first & 0x7F) as usize;
        if count == 0 || count > 4 || rest.len() < count {
            return Err(DerError("bad length"));
        }
        let length = rest[..count].iter().fold(0usize, |length, &byte| (length << 8) | byte as usize);
        (length, &rest[count..])
    };
    if rest.len() < length {
        return Err(DerError("content runs past the end"));
    }
    let header_bytes = input.len() - rest.len();
    let element = Element { tag, content: &rest[..length], encoding: &input[..header_bytes + length] };
    Ok((element, &rest[length..]))
}

/// Reads an element that must carry `tag`.
pub fn expect<'a>(input: &'a [u8], tag: u8, what: &'static str) -> Result<(Element<'a>, &'a [u8]), DerError> {
    let (element, rest) = read(input)?;
    if element.tag != tag {
        return Err(DerError(what));
    }
    Ok((element, rest))
}

/// An OBJECT IDENTIFIER's content in dotted form.
pub fn oid_text(content: &[u8]) -> Result<String, DerError> {
    /// Arcs beyond 64 bits do not occur in names; refusing them bounds the loop.
    const ARC_BYTES_MAX: usize = 9;
    if content.is_empty() || content[content.len() - 1] & 0x80 != 0 {
        return Err(DerError("bad object identifier"));
    }
    let mut arcs: Vec<u64> = Vec::new();
    let mut arc: u64 = 0;
    let mut arc_bytes = 0;
    for &byte in content {
        arc = (arc << 7) | (byte & 0x7F) as u64;
        arc_bytes += 1;
        if arc_bytes > ARC_BYTES_MAX {
            return Err(DerError("object identifier arc too long"));
        }
        if byte & 0x80 == 0 {
            if arcs.is_empty() {
                // The first subidentifier packs the first two arcs: 40 * first + second.
                let first = (arc / 40).min(2);
                arcs.push(first);
                arcs.push(arc - first * 40);
            } else {
                arcs.push(arc);
            }
            arc = 0;
            arc_bytes = 0;
        }
    }
    Ok(arcs.iter().map(u64::to_string).collect::<Vec<_>>().join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_element_with_a_long_length_is_read_whole() {
        let mut input = vec![0x04, 0x81, 0x80];
        input.extend(std::iter::repeat_n(7u8, 0x80));
        input.push(0xFF);
        let (element, rest) = read(&input).unwrap();
        assert_eq!(element.tag, 0x04);
        assert_eq!(element.content.len(), 0x80);
        assert_eq!(element.encoding.len(), 3 + 0x80);
        assert_eq!(rest, &[0xFF]);
    }

    #[test]
    fn truncated_and_oversized_elements_are_errors() {
        assert!(read(&[]).is_err());
        assert!(read(&[0x30]).is_err());
        assert!(read(&[0x30, 0x05, 0x00]).is_err());
        assert!(read(&[0x30, 0x85, 0, 0, 0, 0, 1]).is_err());
        assert!(read(&[0x1F, 0x01, 0x00]).is_err());
    }

    #[test]
    fn object_identifiers_read_in_dotted_form() {
        // 2.5.4.3 (commonName) and 1.2.840.113549.1.9.1 (emailAddress).
        assert_eq!(oid_text(&[0x55, 0x04, 0x03]).unwrap(), "2.5.4.3");
        assert_eq!(oid_text(&[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x01]).unwrap(), "1.2.840.113549.1.9.1");
        assert!(oid_text(&[0x86]).is_err());
    }
}
