//! The GGUF file format: opening a file with errors that say what is wrong, and one
//! family of typed metadata getters that every reader (model config, tokenizer, chat
//! template) uses.
//!
//! The header, metadata and tensor directory are parsed by candle's `gguf_file` reader;
//! this module checks what that reader does not, before it runs: magic and version, and
//! every length the file states (string lengths, array lengths, tensor and metadata
//! counts, tensor dimension counts) against the bytes the file actually has. candle
//! allocates what a length says, so a crafted length of 2^60 aborted the whole process
//! ("memory allocation failed") instead of failing the load; now it is an
//! [`Error::InvalidGguf`]. After the read, tensors that point past the end of the file are
//! rejected too, so a half-downloaded model fails at open time, not in a tensor read.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

pub use candle_core::quantized::gguf_file::{Content, Value};

use crate::error::{Error, Result};

/// Bytes of a GGUF header: magic, version, tensor count, metadata count.
const HEADER_LEN: usize = 24;

/// Opens a GGUF file and reads its header, metadata and tensor directory.
///
/// A missing file is [`Error::NotFound`]; a file that is not GGUF, is truncated, or whose
/// tensors point past its end is [`Error::InvalidGguf`]. Returns the file too, positioned
/// arbitrarily, for reading tensors.
pub fn open(path: &Path) -> Result<(Content, File)> {
    let mut file = open_existing(path)?;
    let content = read(path, &mut file)?;
    Ok((content, file))
}

/// Reads a GGUF's header, metadata and tensor directory from any seekable reader (a file,
/// bytes in memory), with every check [`open`] makes; `path` only names the source in
/// errors. The reader is left positioned arbitrarily.
pub fn read<R: Read + Seek>(path: &Path, reader: &mut R) -> Result<Content> {
    let len = reader.seek(SeekFrom::End(0)).map_err(io(path))?;
    reader.seek(SeekFrom::Start(0)).map_err(io(path))?;
    check_header(path, reader)?;
    reader.seek(SeekFrom::Start(0)).map_err(io(path))?;
    check_lengths(path, reader, len)?;
    reader.seek(SeekFrom::Start(0)).map_err(io(path))?;
    // Metadata is tens of thousands of tiny reads (one per token string); unbuffered,
    // each is a syscall and the header alone takes longer than building the tokenizer.
    let content = Content::read(&mut BufReader::new(&mut *reader))
        .map_err(|e| invalid(path, e.to_string()))?;
    for (name, info) in &content.tensor_infos {
        let elems = info.shape.elem_count();
        // candle casts a tensor's bytes to its block type; for an empty tensor those are
        // an empty `Vec<u8>` whose dangling pointer is not aligned for the block, which
        // the standard library's precondition check aborts on (found by the `gguf_load`
        // fuzz target). No model has an empty tensor.
        if elems == 0 {
            return Err(invalid(path, format!("tensor `{name}` has no elements")));
        }
        let block = info.ggml_dtype.block_size();
        if block == 0 || elems % block != 0 {
            return Err(invalid(
                path,
                format!(
                    "tensor `{name}` has {elems} elements, not a multiple of its block size {block}"
                ),
            ));
        }
        let bytes = (elems / block) as u64 * info.ggml_dtype.type_size() as u64;
        let end = content
            .tensor_data_offset
            .saturating_add(info.offset)
            .saturating_add(bytes);
        if end > len {
            return Err(invalid(
                path,
                format!(
                    "truncated: tensor `{name}` ends at byte {end} but the file has {len} bytes"
                ),
            ));
        }
    }
    Ok(content)
}

/// Checks that `path` is an existing GGUF file of a supported version without parsing the
/// rest (cheap: reads 24 bytes).
pub fn check(path: &Path) -> Result<()> {
    let mut file = open_existing(path)?;
    check_header(path, &mut file)
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

fn invalid(path: &Path, reason: impl Into<String>) -> Error {
    Error::InvalidGguf {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Opens an existing regular file: missing is [`Error::NotFound`], a directory is
/// [`Error::InvalidGguf`].
fn open_existing(path: &Path) -> Result<File> {
    let file = File::open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound {
                path: path.to_owned(),
            }
        } else {
            io(path)(source)
        }
    })?;
    if file.metadata().map_err(io(path))?.is_dir() {
        return Err(invalid(path, "is a directory"));
    }
    Ok(file)
}

/// Checks magic and version without parsing the rest.
fn check_header<R: Read>(path: &Path, file: &mut R) -> Result<()> {
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < header.len() {
        match file.read(&mut header[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => return Err(io(path)(source)),
        }
    }
    if got >= 4 && &header[..4] != b"GGUF" {
        return Err(invalid(
            path,
            format!(
                "bad magic {:?}, expected \"GGUF\"",
                String::from_utf8_lossy(&header[..4])
            ),
        ));
    }
    if got < header.len() {
        return Err(invalid(
            path,
            format!("too short: {got} bytes, a GGUF header alone is {HEADER_LEN}"),
        ));
    }
    let version = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if !(1..=3).contains(&version) {
        return Err(invalid(path, format!("unsupported GGUF version {version}")));
    }
    Ok(())
}

/// Most dimensions a ggml tensor has.
const MAX_DIMS: u64 = 4;
/// Deepest nesting of metadata arrays accepted (GGUF files in the wild use 1).
const MAX_ARRAY_DEPTH: u32 = 4;

/// A bounds-checked walk over the header, metadata and tensor directory: every length
/// must fit in what is left of the file, so the reader that runs next allocates nothing
/// the file does not hold.
fn check_lengths<R: Read + Seek>(path: &Path, file: &mut R, len: u64) -> Result<()> {
    let mut w = Walker {
        r: BufReader::new(file),
        pos: 0,
        len,
        path,
    };
    w.skip(4)?; // magic
    let version = w.u32()?;
    let n_tensors = w.count(version)?;
    let n_kv = w.count(version)?;
    // A metadata entry takes at least 12 bytes (key length, type, one-byte value), a
    // tensor entry at least 24 (name length, dimension count, type, offset).
    w.fits(n_kv, 12, "metadata entries")?;
    w.fits(n_tensors, 24, "tensors")?;
    for _ in 0..n_kv {
        w.string(version, "metadata key")?;
        let ty = w.u32()?;
        w.value(version, ty, 0)?;
    }
    for _ in 0..n_tensors {
        w.string(version, "tensor name")?;
        let n_dims = u64::from(w.u32()?);
        if n_dims > MAX_DIMS {
            return Err(invalid(
                path,
                format!("a tensor has {n_dims} dimensions (at most {MAX_DIMS})"),
            ));
        }
        let mut elems: u64 = 1;
        for _ in 0..n_dims {
            let d = w.count(version)?;
            elems = elems
                .checked_mul(d)
                .filter(|&e| e <= len.saturating_mul(8))
                .ok_or_else(|| invalid(path, "a tensor's shape is larger than the file"))?;
        }
        check_tensor_type(path, w.u32()?)?;
        w.skip(8)?; // offset (checked against the file after the read)
    }
    Ok(())
}

/// ggml tensor types thinktree reads (by id), with their names.
pub const SUPPORTED_TENSOR_TYPES: [(u32, &str); 15] = [
    (0, "F32"),
    (1, "F16"),
    (30, "BF16"),
    (8, "Q8_0"),
    (2, "Q4_0"),
    (3, "Q4_1"),
    (6, "Q5_0"),
    (7, "Q5_1"),
    (10, "Q2_K"),
    (11, "Q3_K"),
    (12, "Q4_K"),
    (13, "Q5_K"),
    (14, "Q6_K"),
    (9, "Q8_1"),
    (15, "Q8_K"),
];

/// A typed error naming the type and the supported ones for a tensor type thinktree
/// cannot read (the IQ, ternary and MXFP4 families, integer tensors).
fn check_tensor_type(path: &Path, id: u32) -> Result<()> {
    if SUPPORTED_TENSOR_TYPES.iter().any(|&(t, _)| t == id) {
        return Ok(());
    }
    let name = match id {
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24..=27 => "an integer type",
        28 => "F64",
        29 => "IQ1_M",
        34 => "TQ1_0",
        35 => "TQ2_0",
        39 => "MXFP4",
        _ => "unknown",
    };
    let names: Vec<&str> = SUPPORTED_TENSOR_TYPES[..13]
        .iter()
        .map(|&(_, n)| n)
        .collect();
    Err(invalid(
        path,
        format!(
            "a tensor has ggml type {id} ({name}), which thinktree cannot read; supported: {} (requantize the file, e.g. with llama.cpp's llama-quantize)",
            names.join(", ")
        ),
    ))
}

struct Walker<'a, R> {
    r: BufReader<&'a mut R>,
    pos: u64,
    len: u64,
    path: &'a Path,
}

impl<R: Read + Seek> Walker<'_, R> {
    fn left(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    fn truncated(&self, what: &str) -> Error {
        invalid(
            self.path,
            format!(
                "truncated or corrupt: {what} at byte {} runs past the end ({} bytes)",
                self.pos, self.len
            ),
        )
    }

    /// `n` items of at least `each` bytes must fit in what is left.
    fn fits(&self, n: u64, each: u64, what: &str) -> Result<()> {
        if n.checked_mul(each).is_none_or(|b| b > self.left()) {
            return Err(invalid(
                self.path,
                format!(
                    "claims {n} {what}, more than its {} remaining bytes can hold",
                    self.left()
                ),
            ));
        }
        Ok(())
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        if (N as u64) > self.left() {
            return Err(self.truncated("a field"));
        }
        self.r.read_exact(&mut b).map_err(io(self.path))?;
        self.pos += N as u64;
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes::<4>()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes::<8>()?))
    }

    /// A count or length: 32 bits in GGUF version 1, 64 bits after.
    fn count(&mut self, version: u32) -> Result<u64> {
        if version == 1 {
            Ok(u64::from(self.u32()?))
        } else {
            self.u64()
        }
    }

    fn skip(&mut self, n: u64) -> Result<()> {
        if n > self.left() {
            return Err(self.truncated("a value"));
        }
        let n_i64 = i64::try_from(n).map_err(|_| self.truncated("a value"))?;
        self.r.seek_relative(n_i64).map_err(io(self.path))?;
        self.pos += n;
        Ok(())
    }

    fn string(&mut self, version: u32, what: &str) -> Result<()> {
        let n = self.count(version)?;
        if n > self.left() {
            return Err(invalid(
                self.path,
                format!(
                    "a {what} claims {n} bytes, more than the {} left in the file",
                    self.left()
                ),
            ));
        }
        self.skip(n)
    }

    /// Skips one metadata value of GGUF type `ty`.
    fn value(&mut self, version: u32, ty: u32, depth: u32) -> Result<()> {
        match ty {
            0 | 1 | 7 => self.skip(1), // u8, i8, bool
            2 | 3 => self.skip(2),     // u16, i16
            4..=6 => self.skip(4),     // u32, i32, f32
            10..=12 => self.skip(8),   // u64, i64, f64
            8 => self.string(version, "string value"),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(invalid(self.path, "metadata arrays nested too deep"));
                }
                let elem = self.u32()?;
                let n = self.count(version)?;
                let each = match elem {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    10..=12 => 8,
                    8 => 8,  // at least a length per string
                    9 => 12, // at least a type and a length per array
                    other => {
                        return Err(invalid(self.path, format!("unknown metadata type {other}")));
                    }
                };
                self.fits(n, each, "array elements")?;
                if matches!(elem, 8 | 9) {
                    for _ in 0..n {
                        self.value(version, elem, depth + 1)?;
                    }
                    Ok(())
                } else {
                    self.skip(n * each)
                }
            }
            other => Err(invalid(self.path, format!("unknown metadata type {other}"))),
        }
    }
}

/// Typed reads of a GGUF's metadata: a missing key or a value of the wrong type is an
/// [`Error::Metadata`] naming the key.
#[derive(Debug, Clone, Copy)]
pub struct Metadata<'a> {
    map: &'a HashMap<String, Value>,
}

impl<'a> Metadata<'a> {
    /// The metadata of a parsed file.
    pub fn of(content: &'a Content) -> Self {
        Self {
            map: &content.metadata,
        }
    }

    /// The error for `key` with `reason`.
    pub fn err(key: &str, reason: impl Into<String>) -> Error {
        Error::Metadata {
            key: key.to_owned(),
            reason: reason.into(),
        }
    }

    /// The raw value, if present.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }

    /// The raw value; missing is an error.
    pub fn require(&self, key: &str) -> Result<&'a Value> {
        self.map.get(key).ok_or_else(|| Self::err(key, "missing"))
    }

    /// A string.
    pub fn string(&self, key: &str) -> Result<&'a str> {
        match self.require(key)? {
            Value::String(s) => Ok(s),
            v => Err(Self::err(
                key,
                format!("expected a string, found {:?}", v.value_type()),
            )),
        }
    }

    /// A string, if present.
    pub fn opt_string(&self, key: &str) -> Result<Option<&'a str>> {
        self.get(key).map(|_| self.string(key)).transpose()
    }

    /// A non-negative integer of any integer type.
    pub fn usize(&self, key: &str) -> Result<usize> {
        let v = self.require(key)?;
        value_as_i64(v)
            .and_then(|x| usize::try_from(x).ok())
            .ok_or_else(|| Self::err(key, format!("expected a non-negative integer, found {v:?}")))
    }

    /// A non-negative integer, if present.
    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        self.get(key).map(|_| self.usize(key)).transpose()
    }

    /// A float (f32 or f64, or an integer).
    pub fn f32(&self, key: &str) -> Result<f32> {
        let v = self.require(key)?;
        match v {
            Value::F32(x) => Ok(*x),
            Value::F64(x) => Ok(*x as f32),
            v => value_as_i64(v).map(|x| x as f32).ok_or_else(|| {
                Self::err(
                    key,
                    format!("expected a number, found {:?}", v.value_type()),
                )
            }),
        }
    }

    /// A float, if present.
    pub fn opt_f32(&self, key: &str) -> Result<Option<f32>> {
        self.get(key).map(|_| self.f32(key)).transpose()
    }

    /// A bool, if present.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(Self::err(
                key,
                format!("expected a bool, found {:?}", v.value_type()),
            )),
        }
    }

    /// An array of strings.
    pub fn string_array(&self, key: &str) -> Result<Vec<&'a str>> {
        match self.require(key)? {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.as_str()),
                    v => Err(Self::err(
                        key,
                        format!("element {i}: expected a string, found {:?}", v.value_type()),
                    )),
                })
                .collect(),
            v => Err(Self::err(
                key,
                format!("expected an array of strings, found {:?}", v.value_type()),
            )),
        }
    }

    /// An array of integers that fit an `i32`.
    pub fn i32_array(&self, key: &str) -> Result<Vec<i32>> {
        match self.require(key)? {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    value_as_i64(v)
                        .and_then(|x| i32::try_from(x).ok())
                        .ok_or_else(|| {
                            Self::err(
                                key,
                                format!(
                                    "element {i}: expected an integer, found {:?}",
                                    v.value_type()
                                ),
                            )
                        })
                })
                .collect(),
            v => Err(Self::err(
                key,
                format!("expected an array of integers, found {:?}", v.value_type()),
            )),
        }
    }

    /// An array of floats (any numeric element type, as f32).
    pub fn f32_array(&self, key: &str) -> Result<Vec<f32>> {
        match self.require(key)? {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::F32(x) => Ok(*x),
                    Value::F64(x) => Ok(*x as f32),
                    v => value_as_i64(v).map(|x| x as f32).ok_or_else(|| {
                        Self::err(
                            key,
                            format!("element {i}: expected a number, found {:?}", v.value_type()),
                        )
                    }),
                })
                .collect(),
            v => Err(Self::err(
                key,
                format!("expected an array of numbers, found {:?}", v.value_type()),
            )),
        }
    }

    /// A token id stored under `key`, if present; it must be an integer inside the
    /// vocabulary (llama.cpp's -1 or `u32::MAX` mean "no such token").
    pub fn optional_id(&self, key: &str, vocab_size: usize) -> Result<Option<u32>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let id = value_as_i64(v).ok_or_else(|| {
            Self::err(
                key,
                format!("expected an integer token id, found {:?}", v.value_type()),
            )
        })?;
        match u32::try_from(id) {
            Ok(id) if usize::try_from(id).is_ok_and(|i| i < vocab_size) => Ok(Some(id)),
            _ if id < 0 || id == i64::from(u32::MAX) => Ok(None),
            _ => Err(Self::err(
                key,
                format!("token id {id} is outside the vocabulary of {vocab_size}"),
            )),
        }
    }
}

fn value_as_i64(v: &Value) -> Option<i64> {
    Some(match v {
        Value::U8(x) => i64::from(*x),
        Value::I8(x) => i64::from(*x),
        Value::U16(x) => i64::from(*x),
        Value::I16(x) => i64::from(*x),
        Value::U32(x) => i64::from(*x),
        Value::I32(x) => i64::from(*x),
        Value::U64(x) => i64::try_from(*x).ok()?,
        Value::I64(x) => *x,
        _ => return None,
    })
}
