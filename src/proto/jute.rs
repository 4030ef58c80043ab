//! Jute, ZooKeeper's binary encoding: big-endian integers, a bool as one byte, and
//! buffers and strings prefixed by a 32-bit length where -1 means null
//! (`org.apache.jute.BinaryInputArchive`). Sans-IO: readers borrow a frame's bytes,
//! writers append to a caller-owned buffer.

use std::fmt;

/// Why a frame could not be decoded. The connection that sent it is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The frame ended before the record did.
    Truncated { needed: usize, remaining: usize },
    /// A length prefix was negative (other than -1 for null) or longer than the frame.
    BadLength(i32),
    /// A string was not valid UTF-8.
    BadUtf8,
    /// A vector claimed more elements than the frame could hold.
    BadCount(i32),
    /// An opcode that has no record here (in a multi, or a reply to an unknown request).
    UnexpectedOpcode(i32),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { needed, remaining } => {
                write!(f, "truncated record: needed {needed} bytes, {remaining} remain")
            }
            DecodeError::BadLength(len) => write!(f, "bad length prefix {len}"),
            DecodeError::BadUtf8 => write!(f, "string is not valid UTF-8"),
            DecodeError::BadCount(count) => write!(f, "bad vector count {count}"),
            DecodeError::UnexpectedOpcode(op) => write!(f, "no record for opcode {op}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Reads jute fields from one frame, front to back.
#[derive(Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, position: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Bytes read so far (an offset for error messages).
    pub fn position(&self) -> usize {
        self.position
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < count {
            return Err(DecodeError::Truncated { needed: count, remaining: self.remaining() });
        }
        let slice = &self.bytes[self.position..self.position + count];
        self.position += count;
        assert!(self.position <= self.bytes.len());
        Ok(slice)
    }

    pub fn read_i32(&mut self) -> Result<i32, DecodeError> {
        let slice = self.take(4)?;
        Ok(i32::from_be_bytes(slice.try_into().expect("took four bytes")))
    }

    pub fn read_i64(&mut self) -> Result<i64, DecodeError> {
        let slice = self.take(8)?;
        Ok(i64::from_be_bytes(slice.try_into().expect("took eight bytes")))
    }

    pub fn read_u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub fn read_bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.take(1)?[0] != 0)
    }

    /// A length-prefixed buffer; null (-1) reads as `None`.
    pub fn read_buffer(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        let length = self.read_i32()?;
        if length == -1 {
            return Ok(None);
        }
        if length < 0 || length as usize > self.remaining() {
            return Err(DecodeError::BadLength(length));
        }
        self.take(length as usize).map(Some)
    }

    /// A buffer where null and empty mean the same thing (znode data).
    pub fn read_bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        Ok(self.read_buffer()?.unwrap_or(&[]))
    }

    /// A string; null reads as the empty string, which every path check rejects.
    pub fn read_str(&mut self) -> Result<&'a str, DecodeError> {
        let bytes = self.read_bytes()?;
        std::str::from_utf8(bytes).map_err(|_| DecodeError::BadUtf8)
    }

    pub fn read_string(&mut self) -> Result<String, DecodeError> {
        self.read_str().map(str::to_owned)
    }

    /// The element count of a vector; null (-1) reads as zero elements. Each element
    /// takes at least `element_size_min` bytes, which bounds the count by the frame.
    pub fn read_count(&mut self, element_size_min: usize) -> Result<usize, DecodeError> {
        let count = self.read_i32()?;
        if count == -1 {
            return Ok(0);
        }
        if count < 0 || (count as usize).saturating_mul(element_size_min) > self.remaining() {
            return Err(DecodeError::BadCount(count));
        }
        Ok(count as usize)
    }

    pub fn read_string_vec(&mut self) -> Result<Vec<String>, DecodeError> {
        let count = self.read_count(4)?;
        (0..count).map(|_| self.read_string()).collect()
    }
}

/// Appends jute fields to a buffer.
pub struct Writer<'a> {
    buffer: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    pub fn new(buffer: &'a mut Vec<u8>) -> Self {
        Writer { buffer }
    }

    pub fn write_i32(&mut self, value: i32) {
        self.buffer.extend_from_slice(&value.to_be_bytes());
    }

    pub fn write_i64(&mut self, value: i64) {
        self.buffer.extend_from_slice(&value.to_be_bytes());
    }

    pub fn write_bool(&mut self, value: bool) {
        self.buffer.push(u8::from(value));
    }

    pub fn write_buffer(&mut self, value: Option<&[u8]>) {
        match value {
            None => self.write_i32(-1),
            Some(bytes) => {
                assert!(bytes.len() <= i32::MAX as usize, "buffer too long for jute");
                self.write_i32(bytes.len() as i32);
                self.buffer.extend_from_slice(bytes);
            }
        }
    }

    pub fn write_bytes(&mut self, value: &[u8]) {
        self.write_buffer(Some(value));
    }

    pub fn write_str(&mut self, value: &str) {
        self.write_bytes(value.as_bytes());
    }

    pub fn write_string_vec<S: AsRef<str>>(&mut self, values: &[S]) {
        self.write_i32(values.len() as i32);
        for value in values {
            self.write_str(value.as_ref());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_big_endian() {
        let mut buffer = Vec::new();
        let mut writer = Writer::new(&mut buffer);
        writer.write_i32(0x01020304);
        writer.write_i64(-2);
        writer.write_bool(true);
        assert_eq!(buffer[..4], [1, 2, 3, 4]);
        let mut reader = Reader::new(&buffer);
        assert_eq!(reader.read_i32().unwrap(), 0x01020304);
        assert_eq!(reader.read_i64().unwrap(), -2);
        assert!(reader.read_bool().unwrap());
        assert!(reader.is_empty());
    }

    #[test]
    fn null_buffer_is_minus_one_and_reads_as_none() {
        let mut buffer = Vec::new();
        Writer::new(&mut buffer).write_buffer(None);
        assert_eq!(buffer, [0xff, 0xff, 0xff, 0xff]);
        assert_eq!(Reader::new(&buffer).read_buffer().unwrap(), None);
    }

    #[test]
    fn a_length_longer_than_the_frame_is_an_error_not_a_panic() {
        let bytes = [0x7f, 0xff, 0xff, 0xff, 1, 2];
        assert_eq!(Reader::new(&bytes).read_buffer(), Err(DecodeError::BadLength(i32::MAX)));
        let bytes = [0xff, 0xff, 0xff, 0xfe];
        assert_eq!(Reader::new(&bytes).read_buffer(), Err(DecodeError::BadLength(-2)));
        let bytes = [0x7f, 0xff, 0xff, 0xff];
        assert!(Reader::new(&bytes).read_string_vec().is_err());
    }
}
