//! Checkpoints made of one or several safetensors files.
//!
//! [`CheckpointReader`] opens every shard's header (and nothing else), checks that the shards
//! belong together (every tensor the `model.safetensors.index.json` lists is in the shard it
//! names, no tensor in two shards) and reads tensors by name, one at a time, from whichever
//! shard holds them. [`ShardIndex::parse`] and [`CheckpointReader::from_index`] work on bytes
//! and any [`ByteSource`], so a browser can use them; [`CheckpointReader::open`] reads a model
//! folder from disk and is not compiled for wasm32.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use crate::error::{Error, Result};
#[cfg(not(target_arch = "wasm32"))]
use crate::hf::safetensors::FileSource;
use crate::hf::safetensors::{missing_tensor, ByteSource, SafetensorsFile, TensorInfo};
use crate::tensor::{DType, Tensor};

/// `model.safetensors.index.json`: which shard file holds each tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardIndex {
    /// Tensor name → shard file name (relative to the index's folder).
    pub weight_map: BTreeMap<String, String>,
    /// The shard files, each once, in order of first appearance in `weight_map`'s sorted keys.
    pub files: Vec<String>,
}

impl ShardIndex {
    /// Parses an index; `file` names it in errors. Shard names must be plain file names in the
    /// index's folder (no `/`, `\` or `..`).
    pub fn parse(bytes: &[u8], file: &str) -> Result<ShardIndex> {
        let bad_index = |detail: String| {
            Error::Invalid(format!(
                "shard index {file}: {detail}; the file is corrupt: download it again"
            ))
        };
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| bad_index(format!("not valid JSON: {e}")))?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| bad_index("it has no `weight_map` object".to_string()))?;
        let mut weight_map = BTreeMap::new();
        let mut files = Vec::new();
        let mut seen = HashSet::new();
        for (name, shard) in map {
            let shard = shard
                .as_str()
                .ok_or_else(|| bad_index(format!("the shard of `{name}` is not a string: {shard}")))?;
            if shard.is_empty() || shard.contains(['/', '\\']) || shard == ".." || shard == "." {
                return Err(bad_index(format!(
                    "the shard of `{name}` is `{shard}`, not a file name in the index's folder"
                )));
            }
            if seen.insert(shard.to_string()) {
                files.push(shard.to_string());
            }
            weight_map.insert(name.clone(), shard.to_string());
        }
        if files.is_empty() {
            return Err(bad_index("its `weight_map` is empty".to_string()));
        }
        Ok(ShardIndex { weight_map, files })
    }
}

/// All tensors of a checkpoint (one file or several shards) behind one lookup. Holds only the
/// headers; each `read` reads one tensor.
///
/// ```no_run
/// # fn main() -> pinhole_core::Result<()> {
/// use pinhole_core::{hf::CheckpointReader, DType};
/// let mut ck = CheckpointReader::open("models/paligemma-3b-pt-224")?;
/// let names: Vec<String> = ck.tensors().map(|t| t.name.clone()).collect();
/// for name in &names {
///     let w = ck.read_as(name, DType::F16)?; // only this tensor is in memory
///     // ... upload `w` to the GPU, then let it drop ...
/// #   let _ = w;
/// }
/// # Ok(())
/// # }
/// ```
pub struct CheckpointReader<S> {
    /// Names the checkpoint in errors (its folder or file).
    place: String,
    shards: Vec<SafetensorsFile<S>>,
    /// name → (shard, tensor index in that shard's header)
    names: HashMap<String, (usize, usize)>,
}

impl<S> fmt::Debug for CheckpointReader<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointReader")
            .field("place", &self.place)
            .field("shards", &self.shards)
            .finish()
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl CheckpointReader<FileSource> {
    /// Opens a checkpoint on disk. `path` is a model folder (holding
    /// `model.safetensors.index.json`, `model.safetensors` or exactly one `*.safetensors`),
    /// an index file, or a single `.safetensors` file. Reads headers only.
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        if path.is_file() {
            let is_index = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".index.json"));
            if is_index {
                return Self::open_index_file(path);
            }
            let f = SafetensorsFile::open_path(path)?;
            return CheckpointReader::from_files(shown, vec![f]);
        }
        if !path.is_dir() {
            return Err(Error::Invalid(format!(
                "checkpoint {shown} does not exist; give a model folder or a .safetensors file"
            )));
        }
        let index = path.join("model.safetensors.index.json");
        if index.is_file() {
            return Self::open_index_file(&index);
        }
        let single = path.join("model.safetensors");
        if single.is_file() {
            let f = SafetensorsFile::open_path(&single)?;
            return CheckpointReader::from_files(shown, vec![f]);
        }
        let entries = std::fs::read_dir(path)
            .map_err(|e| Error::Invalid(format!("cannot list checkpoint folder {shown}: {e}")))?;
        let mut found: Vec<std::path::PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors") && p.is_file())
            .collect();
        found.sort();
        match found.len() {
            1 => {
                let f = SafetensorsFile::open_path(&found[0])?;
                CheckpointReader::from_files(shown, vec![f])
            }
            0 => Err(Error::Invalid(format!(
                "checkpoint folder {shown} has no model.safetensors, no \
                 model.safetensors.index.json and no other .safetensors file; download the \
                 model's safetensors weights into it"
            ))),
            n => Err(Error::Invalid(format!(
                "checkpoint folder {shown} has {n} .safetensors files but no \
                 model.safetensors.index.json saying which tensor is where; add the index or \
                 give one file"
            ))),
        }
    }

    fn open_index_file(index: &std::path::Path) -> Result<Self> {
        let shown = index.display().to_string();
        let bytes =
            std::fs::read(index).map_err(|e| Error::Invalid(format!("cannot read shard index {shown}: {e}")))?;
        let dir = index.parent().unwrap_or(std::path::Path::new("."));
        CheckpointReader::from_index(&bytes, &shown, |shard| {
            let p = dir.join(shard);
            if !p.is_file() {
                return Err(Error::Invalid(format!(
                    "shard {} listed in {shown} is missing; download all shards of the \
                     checkpoint",
                    p.display()
                )));
            }
            FileSource::open(&p).map(|s| (p.display().to_string(), s))
        })
    }
}

impl<S: ByteSource> CheckpointReader<S> {
    /// A checkpoint made of already opened files (tensor names must be unique across them).
    pub fn from_files(place: String, shards: Vec<SafetensorsFile<S>>) -> Result<Self> {
        let mut names = HashMap::new();
        for (si, shard) in shards.iter().enumerate() {
            for (ti, t) in shard.header().tensors.iter().enumerate() {
                if let Some((other, _)) = names.insert(t.name.clone(), (si, ti)) {
                    return Err(Error::Invalid(format!(
                        "checkpoint {place}: tensor `{}` is in both {} and {}; the shards do not \
                         belong together",
                        t.name,
                        shards[other].header().file,
                        shard.header().file
                    )));
                }
            }
        }
        Ok(CheckpointReader { place, shards, names })
    }

    /// A sharded checkpoint from its index bytes; `open_shard(file_name)` returns the shard's
    /// display name and source. Every tensor the index lists must be in the shard it names.
    pub fn from_index(
        index: &[u8],
        index_name: &str,
        mut open_shard: impl FnMut(&str) -> Result<(String, S)>,
    ) -> Result<Self> {
        let idx = ShardIndex::parse(index, index_name)?;
        let mut shards = Vec::with_capacity(idx.files.len());
        let mut by_file = HashMap::new();
        for f in &idx.files {
            let (shown, src) = open_shard(f)?;
            by_file.insert(f.clone(), shards.len());
            shards.push(SafetensorsFile::open(src, &shown)?);
        }
        for (name, f) in &idx.weight_map {
            let shard = by_file.get(f).and_then(|&i| shards.get(i));
            if let Some(shard) = shard {
                if shard.header().get(name).is_none() {
                    return Err(Error::Invalid(format!(
                        "shard index {index_name} puts tensor `{name}` in {}, but that file does \
                         not hold it; the shards and the index do not match: download them again",
                        shard.header().file
                    )));
                }
            }
        }
        CheckpointReader::from_files(index_name.to_string(), shards)
    }

    /// Every tensor, shard by shard in the order of their data (the cheapest order to read).
    pub fn tensors(&self) -> impl Iterator<Item = &TensorInfo> {
        self.shards.iter().flat_map(|s| s.header().tensors.iter())
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    pub fn shards(&self) -> &[SafetensorsFile<S>] {
        &self.shards
    }

    pub fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.names
            .get(name)
            .and_then(|&(s, t)| self.shards.get(s)?.header().tensors.get(t))
            .ok_or_else(|| missing_tensor(name, &self.place, self.tensors()))
    }

    fn shard_of(&mut self, name: &str) -> Result<&mut SafetensorsFile<S>> {
        match self.names.get(name) {
            Some(&(s, _)) if s < self.shards.len() => Ok(&mut self.shards[s]),
            _ => Err(missing_tensor(name, &self.place, self.tensors())),
        }
    }

    /// See [`SafetensorsFile::read`].
    pub fn read(&mut self, name: &str) -> Result<Tensor> {
        self.shard_of(name)?.read(name)
    }

    /// See [`SafetensorsFile::read_as`].
    pub fn read_as(&mut self, name: &str, target: DType) -> Result<Tensor> {
        self.shard_of(name)?.read_as(name, target)
    }

    /// See [`SafetensorsFile::read_pieces`].
    pub fn read_pieces<E: From<Error>>(
        &mut self,
        name: &str,
        elems: std::ops::Range<usize>,
        piece: usize,
        buf: &mut Vec<u8>,
        f: impl FnMut(&[u8]) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        self.shard_of(name)?.read_pieces(name, elems, piece, buf, f)
    }

    /// See [`SafetensorsFile::read_raw`].
    pub fn read_raw(&mut self, name: &str) -> Result<Vec<u8>> {
        self.shard_of(name)?.read_raw(name)
    }
}
