//! Framing: every message on a client connection is a 32-bit big-endian length followed
//! by that many bytes (`NIOServerCnxn.readLength`).

/// Why a frame's length prefix was refused. ZooKeeper closes the connection with
/// "Len error" in both cases, and so do we.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    Negative(i32),
    TooLong { length: i32, max_bytes: usize },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Negative(length) => write!(f, "Len error {length}: negative frame length"),
            FrameError::TooLong { length, max_bytes } => {
                write!(f, "Len error {length}: frame longer than jute.maxbuffer ({max_bytes})")
            }
        }
    }
}

/// Decodes a length prefix, refusing lengths ZooKeeper refuses.
pub fn frame_length(prefix: [u8; 4], max_bytes: usize) -> Result<usize, FrameError> {
    let length = i32::from_be_bytes(prefix);
    if length < 0 {
        return Err(FrameError::Negative(length));
    }
    if length as usize > max_bytes {
        return Err(FrameError::TooLong { length, max_bytes });
    }
    Ok(length as usize)
}

/// Starts a frame in `buffer`: reserves the length prefix and returns where it is.
pub fn begin(buffer: &mut Vec<u8>) -> usize {
    let start = buffer.len();
    buffer.extend_from_slice(&[0; 4]);
    start
}

/// Ends the frame begun at `start` by filling in its length prefix.
pub fn end(buffer: &mut [u8], start: usize) {
    let length = buffer.len() - start - 4;
    assert!(length <= i32::MAX as usize, "frame too long");
    buffer[start..start + 4].copy_from_slice(&(length as i32).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_beyond_maxbuffer_or_negative_are_refused() {
        assert_eq!(frame_length(16i32.to_be_bytes(), 0xfffff), Ok(16));
        assert_eq!(frame_length(0xfffffi32.to_be_bytes(), 0xfffff), Ok(0xfffff));
        assert!(frame_length(0x100000i32.to_be_bytes(), 0xfffff).is_err());
        assert!(frame_length(i32::MAX.to_be_bytes(), 0xfffff).is_err());
        assert_eq!(frame_length((-1i32).to_be_bytes(), 0xfffff), Err(FrameError::Negative(-1)));
    }

    #[test]
    fn a_frame_is_prefixed_by_its_length() {
        let mut buffer = vec![9];
        let start = begin(&mut buffer);
        buffer.extend_from_slice(b"abc");
        end(&mut buffer, start);
        assert_eq!(buffer, [9, 0, 0, 0, 3, b'a', b'b', b'c']);
    }
}
