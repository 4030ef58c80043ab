//! Compressed ZooKeeper snapshots (`zookeeper.snapshot.compression.method`): `.gz` is
//! Java's GZIPOutputStream, `.snappy` is snappy-java's `SnappyOutputStream` (a 16-byte
//! header, then blocks of a big-endian length and raw Snappy bytes). ZooKeeper checksums
//! the uncompressed stream (`SnapStream`: the CheckedOutputStream wraps the compressor),
//! so what comes out is read as an uncompressed snapshot. Sans-IO.

use std::io::Read;

/// snappy-java's `SnappyCodec.MAGIC_HEADER`, followed by two 4-byte versions.
const SNAPPY_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const SNAPPY_HEADER_BYTES: usize = 16;

/// A snapshot's bytes decompress to at most this much: a file that claims more is not
/// read (the largest trees fit many times over).
pub const SNAPSHOT_BYTES_MAX: usize = 64 << 30;

/// How a snapshot file is stored, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
}

impl Compression {
    /// The compression a file's name says, and the name without its extension
    /// (`snapshot.<zxid>`).
    pub fn of_name(name: &str) -> (Compression, &str) {
        if let Some(stem) = name.strip_suffix(".gz") {
            (Compression::Gzip, stem)
        } else if let Some(stem) = name.strip_suffix(".snappy") {
            (Compression::Snappy, stem)
        } else {
            (Compression::None, name)
        }
    }
}

/// Why a compressed snapshot did not decompress, and where in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecompressError {
    pub offset: usize,
    pub reason: String,
    /// The stream ends early, as a crash leaves a snapshot being written (rather than
    /// holding bytes that do not decompress).
    pub cut_short: bool,
}

/// The uncompressed snapshot.
pub fn decompress(compression: Compression, bytes: &[u8]) -> Result<Vec<u8>, DecompressError> {
    match compression {
        Compression::None => Ok(bytes.to_vec()),
        Compression::Gzip => gunzip(bytes),
        Compression::Snappy => unsnappy(bytes),
    }
}

fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, DecompressError> {
    let mut output = Vec::new();
    let mut decoder = flate2::read::GzDecoder::new(bytes).take(SNAPSHOT_BYTES_MAX as u64 + 1);
    decoder.read_to_end(&mut output).map_err(|error| DecompressError {
        offset: 0,
        reason: format!("gzip: {error}"),
        cut_short: error.kind() == std::io::ErrorKind::UnexpectedEof,
    })?;
    if output.len() > SNAPSHOT_BYTES_MAX {
        return Err(DecompressError { offset: 0, reason: "decompresses to more than 64 GiB".into(), cut_short: false });
    }
    Ok(output)
}

fn unsnappy(bytes: &[u8]) -> Result<Vec<u8>, DecompressError> {
    let error = |offset: usize, reason: String| DecompressError { offset, reason, cut_short: false };
    let cut = |offset: usize, reason: String| DecompressError { offset, reason, cut_short: true };
    let mut output = Vec::new();
    let mut decoder = snap::raw::Decoder::new();
    let mut offset = 0;
    while offset < bytes.len() {
        // A stream may hold several, each after its own header (SnappyInputStream reads
        // concatenated streams).
        if bytes[offset..].starts_with(&SNAPPY_MAGIC) {
            if bytes.len() - offset < SNAPPY_HEADER_BYTES {
                return Err(cut(offset, "snappy: header cut short".into()));
            }
            offset += SNAPPY_HEADER_BYTES;
            continue;
        }
        if offset == 0 {
            return Err(error(0, "snappy: not snappy-java's stream header".into()));
        }
        let Some(length) = bytes.get(offset..offset + 4) else {
            return Err(cut(offset, "snappy: block length cut short".into()));
        };
        let length = i32::from_be_bytes(length.try_into().expect("four bytes"));
        let length =
            usize::try_from(length).map_err(|_| error(offset, format!("snappy: a block of {length} bytes")))?;
        let block = bytes
            .get(offset + 4..offset + 4 + length)
            .ok_or_else(|| cut(offset, format!("snappy: a block of {length} bytes runs past the end")))?;
        let size = snap::raw::decompress_len(block).map_err(|cause| error(offset + 4, format!("snappy: {cause}")))?;
        if output.len() + size > SNAPSHOT_BYTES_MAX {
            return Err(error(offset, "decompresses to more than 64 GiB".into()));
        }
        let start = output.len();
        output.resize(start + size, 0);
        decoder
            .decompress(block, &mut output[start..])
            .map_err(|cause| error(offset + 4, format!("snappy: {cause}")))?;
        offset += 4 + block.len();
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snappy_stream(blocks: &[&[u8]]) -> Vec<u8> {
        let mut stream = SNAPPY_MAGIC.to_vec();
        stream.extend_from_slice(&1i32.to_be_bytes());
        stream.extend_from_slice(&1i32.to_be_bytes());
        for block in blocks {
            let compressed = snap::raw::Encoder::new().compress_vec(block).unwrap();
            stream.extend_from_slice(&(compressed.len() as i32).to_be_bytes());
            stream.extend_from_slice(&compressed);
        }
        stream
    }

    #[test]
    fn a_snappy_java_stream_decompresses_block_by_block() {
        let stream = snappy_stream(&[b"ZKSN first block ", b"and the second"]);
        assert_eq!(decompress(Compression::Snappy, &stream).unwrap(), b"ZKSN first block and the second");
    }

    #[test]
    fn a_gzip_stream_decompresses() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut encoder, b"ZKSN gzip").unwrap();
        assert_eq!(decompress(Compression::Gzip, &encoder.finish().unwrap()).unwrap(), b"ZKSN gzip");
    }

    #[test]
    fn cut_and_damaged_streams_are_errors_with_an_offset() {
        let stream = snappy_stream(&[b"some snapshot bytes to compress"]);
        for length in SNAPPY_HEADER_BYTES + 1..stream.len() {
            assert!(decompress(Compression::Snappy, &stream[..length]).unwrap_err().cut_short, "{length}");
        }
        let mut damaged = stream.clone();
        damaged[SNAPPY_HEADER_BYTES..SNAPPY_HEADER_BYTES + 4].copy_from_slice(&(-5i32).to_be_bytes());
        let error = decompress(Compression::Snappy, &damaged).unwrap_err();
        assert_eq!(error.offset, SNAPPY_HEADER_BYTES);
        assert!(!error.cut_short);
        assert!(decompress(Compression::Gzip, b"not gzip").is_err());
        assert!(decompress(Compression::Snappy, b"not snappy at all").is_err());
    }
}
