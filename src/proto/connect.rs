//! The connect handshake: the first frame of every connection
//! (`ConnectRequest`/`ConnectResponse` in zookeeper.jute). Clients since 3.3 append a
//! `readOnly` byte to both; older clients do not, and the server answers in kind.

use super::jute::{DecodeError, Reader, Writer};

pub const PASSWORD_SIZE_BYTES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub password: Vec<u8>,
    /// `None` when the client did not send the trailing byte (an "old client").
    pub read_only: Option<bool>,
}

impl ConnectRequest {
    pub fn decode(bytes: &[u8]) -> Result<ConnectRequest, DecodeError> {
        let mut reader = Reader::new(bytes);
        let protocol_version = reader.read_i32()?;
        let last_zxid_seen = reader.read_i64()?;
        let timeout_ms = reader.read_i32()?;
        let session_id = reader.read_i64()?;
        let password = reader.read_bytes()?.to_vec();
        let read_only = if reader.is_empty() { None } else { Some(reader.read_bool()?) };
        Ok(ConnectRequest { protocol_version, last_zxid_seen, timeout_ms, session_id, password, read_only })
    }

    pub fn encode(&self, buffer: &mut Vec<u8>) {
        let mut writer = Writer::new(buffer);
        writer.write_i32(self.protocol_version);
        writer.write_i64(self.last_zxid_seen);
        writer.write_i32(self.timeout_ms);
        writer.write_i64(self.session_id);
        writer.write_bytes(&self.password);
        if let Some(read_only) = self.read_only {
            writer.write_bool(read_only);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub password: [u8; PASSWORD_SIZE_BYTES],
    /// Written only when the request carried the byte.
    pub read_only: Option<bool>,
}

impl ConnectResponse {
    /// The answer to a re-attach that failed (unknown session or wrong password): zero
    /// timeout, zero id and a zeroed password, which clients report as an expired session
    /// (`ZooKeeperServer.finishSessionInit`).
    pub fn invalid(read_only: Option<bool>) -> ConnectResponse {
        ConnectResponse {
            protocol_version: 0,
            timeout_ms: 0,
            session_id: 0,
            password: [0; PASSWORD_SIZE_BYTES],
            read_only: read_only.map(|_| false),
        }
    }

    /// The client's side: the readOnly byte is read when the frame holds one.
    pub fn decode(bytes: &[u8]) -> Result<ConnectResponse, DecodeError> {
        let mut reader = Reader::new(bytes);
        let protocol_version = reader.read_i32()?;
        let timeout_ms = reader.read_i32()?;
        let session_id = reader.read_i64()?;
        let password_bytes = reader.read_bytes()?;
        let password = password_bytes.try_into().map_err(|_| DecodeError::BadLength(password_bytes.len() as i32))?;
        let read_only = if reader.is_empty() { None } else { Some(reader.read_bool()?) };
        Ok(ConnectResponse { protocol_version, timeout_ms, session_id, password, read_only })
    }

    pub fn encode(&self, writer: &mut Writer<'_>) {
        writer.write_i32(self.protocol_version);
        writer.write_i32(self.timeout_ms);
        writer.write_i64(self.session_id);
        writer.write_bytes(&self.password);
        if let Some(read_only) = self.read_only {
            writer.write_bool(read_only);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_request_with_and_without_read_only_byte() {
        let mut request = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 7,
            timeout_ms: 30000,
            session_id: 0,
            password: vec![0; 16],
            read_only: Some(false),
        };
        let mut bytes = Vec::new();
        request.encode(&mut bytes);
        assert_eq!(bytes.len(), 4 + 8 + 4 + 8 + 4 + 16 + 1);
        assert_eq!(ConnectRequest::decode(&bytes).unwrap(), request);
        request.read_only = None;
        bytes.clear();
        request.encode(&mut bytes);
        assert_eq!(ConnectRequest::decode(&bytes).unwrap(), request);
    }

    #[test]
    fn truncated_connect_request_is_an_error() {
        assert!(ConnectRequest::decode(&[0, 0, 0]).is_err());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn connect_requests_round_trip(
            protocol_version in any::<i32>(),
            last_zxid_seen in any::<i64>(),
            timeout_ms in any::<i32>(),
            session_id in any::<i64>(),
            password in prop::collection::vec(any::<u8>(), 0..32),
            read_only in prop::option::of(any::<bool>()),
        ) {
            let request = ConnectRequest { protocol_version, last_zxid_seen, timeout_ms, session_id, password, read_only };
            let mut bytes = Vec::new();
            request.encode(&mut bytes);
            prop_assert_eq!(ConnectRequest::decode(&bytes).unwrap(), request);
        }

        #[test]
        fn connect_responses_round_trip(
            protocol_version in any::<i32>(),
            timeout_ms in any::<i32>(),
            session_id in any::<i64>(),
            password in any::<[u8; PASSWORD_SIZE_BYTES]>(),
            read_only in prop::option::of(any::<bool>()),
        ) {
            let response = ConnectResponse { protocol_version, timeout_ms, session_id, password, read_only };
            let mut bytes = Vec::new();
            response.encode(&mut Writer::new(&mut bytes));
            prop_assert_eq!(ConnectResponse::decode(&bytes).unwrap(), response);
        }
    }
}
