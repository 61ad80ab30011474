//! A JPEG decoder whose RGB output is identical to Pillow's (which decodes with
//! libjpeg-turbo and its defaults): baseline and extended sequential Huffman (SOF0/SOF1) and
//! progressive Huffman (SOF2), 1, 3 or 4 components, any integral sampling factors, restart
//! intervals.
//!
//! Each step re-implements what libjpeg-turbo does with the settings Pillow uses, operation
//! for operation, because any other rounding changes pixels by a level or more (and pixels
//! change tokens):
//! * the "islow" integer IDCT (jidctint.c: 13-bit constants, 2 extra bits after pass 1) with
//!   its 1024-entry range-limit table;
//! * "fancy" upsampling (jdsample.c): triangle filters for h2v1, h1v2 and h2v2 with their
//!   alternating rounding biases, chroma edges replicated; plain replication for other
//!   integral factors and for chroma planes 2 samples wide or less. Pillow does not switch
//!   on merged upsampling (which needs fancy upsampling off);
//! * YCbCr → RGB with libjpeg's 16-bit fixed-point tables (jdcolor.c); YCCK → CMYK the same
//!   way; the colour space guessed from the JFIF/Adobe markers and component ids as
//!   libjpeg does (jdapimin.c);
//! * then what Pillow does on top: CMYK read as Adobe-inverted ("CMYK;I") and converted to
//!   RGB with its integer `cmyk2rgb`; grayscale replicated.
//!
//! Not supported, with a clear error: arithmetic coding (SOF9-SOF15), lossless and
//! hierarchical JPEG, 12- and 16-bit samples, and progressive files whose scans leave some
//! low-frequency coefficients unrefined (libjpeg then applies block smoothing). Pillow refuses
//! 12-bit files too.
//!
//! Memory: the image's component planes (1 byte per sample, whole blocks) plus, for
//! progressive files only, their coefficients (2 bytes per sample, freed before the planes
//! are converted), plus the RGB output. Sizes are checked against the caller's limits from
//! the frame header, before anything is allocated.

/// What went wrong, without the file name (the caller adds it).
#[derive(Debug)]
pub(crate) enum JpegError {
    /// Malformed data.
    Corrupt(String),
    /// The data ends before the image does.
    Truncated,
    /// A valid JPEG feature this decoder does not implement.
    Unsupported(String),
    /// Width and height from the frame header exceed the caller's limit.
    TooLarge { width: usize, height: usize },
}

type R<T> = Result<T, JpegError>;

fn corrupt<T>(msg: impl Into<String>) -> R<T> {
    Err(JpegError::Corrupt(msg.into()))
}

/// A decoded JPEG: RGB pixels plus the metadata Pillow reads for orientation.
pub(crate) struct Decoded {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
    /// The APP1 "Exif" payloads concatenated as Pillow does (first one with its "Exif\0\0").
    pub exif: Option<Vec<u8>>,
    /// The APP1 XMP packet (the last one, as Pillow keeps).
    pub xmp: Option<Vec<u8>>,
}

/// Zigzag order → natural order, with 16 extra entries pointing at 63 as libjpeg's
/// `jpeg_natural_order` has, so a corrupt run length past the block end lands on the last
/// coefficient exactly as libjpeg's does.
const NATURAL: [usize; 80] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
    28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54,
    47, 55, 62, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
];

/// A Huffman table with a 9-bit lookahead table (libjpeg's `d_derived_tbl`).
#[derive(Clone)]
struct Huffman {
    /// `(length << 8) | symbol` for codes up to 9 bits; 0 when longer.
    lookup: Vec<u16>,
    /// Largest code of each length (-1 when none), index 1..=16; [17] is a sentinel.
    maxcode: [i32; 18],
    /// Offset from a code of each length to its symbol index.
    valoffset: [i32; 17],
    values: Vec<u8>,
}

const LOOKAHEAD: u32 = 9;

impl Huffman {
    fn new(counts: &[u8; 16], values: Vec<u8>, is_dc: bool) -> R<Huffman> {
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        if total > 256 || total != values.len() {
            return corrupt("bad Huffman table");
        }
        // libjpeg refuses DC tables with symbols above 15 (jdhuff.c).
        if is_dc && values.iter().any(|&v| v > 15) {
            return corrupt("bad Huffman table (DC symbol above 15)");
        }
        let mut maxcode = [-1i32; 18];
        let mut valoffset = [0i32; 17];
        let mut lookup = vec![0u16; 1 << LOOKAHEAD];
        let mut code: i32 = 0;
        let mut k = 0usize;
        for len in 1..=16usize {
            let n = counts[len - 1] as usize;
            if n > 0 {
                valoffset[len] = k as i32 - code;
                for _ in 0..n {
                    if len as u32 <= LOOKAHEAD {
                        let shift = LOOKAHEAD - len as u32;
                        let first = (code as usize) << shift;
                        for e in &mut lookup[first..first + (1 << shift)] {
                            *e = ((len as u16) << 8) | values[k] as u16;
                        }
                    }
                    code += 1;
                    k += 1;
                }
                maxcode[len] = code - 1;
            }
            // The codes of each length must fit in that length (libjpeg: JERR_BAD_HUFF_TABLE).
            if code > (1 << len) {
                return corrupt("bad Huffman table (code space overflow)");
            }
            code <<= 1;
        }
        maxcode[17] = i32::MAX;
        Ok(Huffman {
            lookup,
            maxcode,
            valoffset,
            values,
        })
    }
}

/// Reads entropy-coded bits; stops at a marker and then supplies zero bits, as libjpeg does.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u64,
    nbits: u32,
    /// The marker that ended the entropy data (`pos` is just after it).
    marker: Option<u8>,
    /// Zero bits supplied after the data ran out without a marker.
    pad_bits: u64,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8], pos: usize) -> Bits<'a> {
        Bits {
            data,
            pos,
            acc: 0,
            nbits: 0,
            marker: None,
            pad_bits: 0,
        }
    }

    #[inline]
    fn fill(&mut self) {
        while self.nbits <= 56 {
            let byte = if self.marker.is_some() {
                0
            } else if self.pos >= self.data.len() {
                self.pad_bits += 8;
                0
            } else {
                let b = self.data[self.pos];
                if b != 0xFF {
                    self.pos += 1;
                    b
                } else {
                    // 0xFF 0x00 is a data 0xFF; 0xFF fill bytes may precede a marker.
                    let mut p = self.pos + 1;
                    while p < self.data.len() && self.data[p] == 0xFF {
                        p += 1;
                    }
                    if p >= self.data.len() {
                        self.pos = self.data.len();
                        self.pad_bits += 8;
                        0
                    } else if self.data[p] == 0 {
                        self.pos = p + 1;
                        0xFF
                    } else {
                        self.marker = Some(self.data[p]);
                        self.pos = p + 1;
                        0
                    }
                }
            };
            self.acc = (self.acc << 8) | byte as u64;
            self.nbits += 8;
        }
    }

    #[inline]
    fn bits(&mut self, n: u32) -> i32 {
        if n == 0 {
            return 0;
        }
        if self.nbits < n {
            self.fill();
        }
        self.nbits -= n;
        ((self.acc >> self.nbits) & ((1u64 << n) - 1)) as i32
    }

    #[inline]
    fn bit(&mut self) -> bool {
        self.bits(1) != 0
    }

    /// Whether zero bits supplied past the end of the data were consumed.
    fn overran(&self) -> bool {
        self.pad_bits > self.nbits as u64
    }

    #[inline]
    fn decode(&mut self, h: &Huffman) -> u8 {
        if self.nbits < 17 {
            self.fill();
        }
        let peek = ((self.acc >> (self.nbits - LOOKAHEAD)) & ((1 << LOOKAHEAD) - 1)) as usize;
        let e = h.lookup[peek];
        if e != 0 {
            self.nbits -= (e >> 8) as u32;
            return e as u8;
        }
        let mut len = LOOKAHEAD as usize + 1;
        let mut code = ((self.acc >> (self.nbits - len as u32)) & ((1 << len) - 1)) as i32;
        while code > h.maxcode[len] {
            len += 1;
            if len > 16 {
                break;
            }
            code = ((self.acc >> (self.nbits - len as u32)) & ((1 << len) - 1)) as i32;
        }
        if len > 16 {
            // libjpeg warns "bad Huffman code", consumes 17 bits and decodes a 0.
            self.nbits -= 17;
            return 0;
        }
        self.nbits -= len as u32;
        h.values[((code + h.valoffset[len]) & 0xFF) as usize % h.values.len().max(1)]
    }

    /// After a restart interval: drop the buffered bits and skip the RSTn marker.
    fn restart(&mut self) {
        self.acc = 0;
        self.nbits = 0;
        match self.marker {
            Some(m) if (0xD0..=0xD7).contains(&m) => self.marker = None,
            Some(_) => {} // another marker: leave it for the caller (libjpeg resyncs the same way)
            None => {
                // Find the marker that should follow.
                let mut p = self.pos;
                while p + 1 < self.data.len() {
                    if self.data[p] == 0xFF && self.data[p + 1] != 0 && self.data[p + 1] != 0xFF {
                        let m = self.data[p + 1];
                        if (0xD0..=0xD7).contains(&m) {
                            self.pos = p + 2;
                        } else {
                            self.pos = p + 2;
                            self.marker = Some(m);
                        }
                        return;
                    }
                    p += 1;
                }
                self.pos = self.data.len();
            }
        }
    }
}

/// HUFF_EXTEND: the signed value of `s` received bits.
#[inline]
fn extend(v: i32, s: u32) -> i32 {
    if s == 0 {
        0
    } else if v < (1 << (s - 1)) {
        v + ((-1) << s) + 1
    } else {
        v
    }
}

#[derive(Clone)]
struct Component {
    id: u8,
    h: usize,
    v: usize,
    tq: usize,
    /// Blocks per row / column of the component's padded plane (whole MCUs).
    bw: usize,
    bh: usize,
    /// Samples of the component that lie inside the image (libjpeg's downsampled size).
    dw: usize,
    dh: usize,
    /// The quantisation table latched when the component's first scan began.
    quant: Option<[u16; 64]>,
}

struct Frame {
    progressive: bool,
    width: usize,
    height: usize,
    comps: Vec<Component>,
    hmax: usize,
    vmax: usize,
    mcux: usize,
    mcuy: usize,
}

/// Decodes a JPEG to RGB as Pillow does; refuses images over `max_pixels` pixels or with a
/// side over `max_side` before allocating anything for them.
pub(crate) fn decode(data: &[u8], max_pixels: usize, max_side: usize) -> R<Decoded> {
    if data.len() < 2 || data[0] != 0xFF || data[1] != 0xD8 {
        return corrupt("no JPEG start-of-image marker");
    }
    let mut pos = 2;
    let mut qt: [Option<[u16; 64]>; 4] = [None; 4];
    let mut dc_tables: [Option<Huffman>; 4] = [None, None, None, None];
    let mut ac_tables: [Option<Huffman>; 4] = [None, None, None, None];
    let mut restart_interval = 0usize;
    let mut frame: Option<Frame> = None;
    let mut exif: Option<Vec<u8>> = None;
    let mut xmp: Option<Vec<u8>> = None;
    let mut jfif = false;
    let mut adobe: Option<u8> = None;
    let mut planes: Vec<Vec<u8>> = Vec::new();
    let mut coefs: Vec<Vec<i16>> = Vec::new();
    // libjpeg's coef_bits: per component and coefficient, the Al of the last scan (-1: none).
    let mut coef_bits: Vec<[i32; 64]> = Vec::new();
    let mut pending_marker: Option<u8> = None;
    let mut seen_scan = false;
    loop {
        let marker = match pending_marker.take() {
            Some(m) => m,
            None => {
                // Skip to the next marker (libjpeg skips garbage between segments too).
                loop {
                    if pos >= data.len() {
                        return Err(JpegError::Truncated);
                    }
                    if data[pos] == 0xFF {
                        let mut p = pos + 1;
                        while p < data.len() && data[p] == 0xFF {
                            p += 1;
                        }
                        if p >= data.len() {
                            return Err(JpegError::Truncated);
                        }
                        if data[p] != 0 {
                            pos = p + 1;
                            break data[p];
                        }
                        pos = p + 1;
                    } else {
                        pos += 1;
                    }
                }
            }
        };
        match marker {
            0xD8 => return corrupt("a second start-of-image marker"),
            0xD9 => break,
            0xD0..=0xD7 | 0x01 => continue,
            _ => {}
        }
        if pos + 2 > data.len() {
            return Err(JpegError::Truncated);
        }
        let len = u16::from_be_bytes([data[pos], data[pos + 1]]) as usize;
        if len < 2 {
            return corrupt(format!("marker 0xFF{marker:02X} with a bad length {len}"));
        }
        if pos + len > data.len() {
            return Err(JpegError::Truncated);
        }
        let seg = &data[pos + 2..pos + len];
        pos += len;
        match marker {
            0xC0..=0xC2 => {
                if frame.is_some() {
                    return corrupt("more than one frame header");
                }
                let f = parse_frame(seg, marker == 0xC2, max_pixels, max_side)?;
                coef_bits = vec![[-1; 64]; f.comps.len()];
                frame = Some(f);
            }
            0xC3 | 0xC5 | 0xC6 | 0xC7 => {
                return Err(JpegError::Unsupported(
                    "lossless or hierarchical JPEG (SOF3/5/6/7); convert it to a baseline JPEG or PNG".into(),
                ))
            }
            0xC9..=0xCB | 0xCD..=0xCF => {
                return Err(JpegError::Unsupported(
                    "arithmetic-coded JPEG (SOF9-15); re-save it as an ordinary (Huffman-coded) JPEG or PNG".into(),
                ))
            }
            0xCC => {} // DAC: arithmetic conditioning; the SOF says it is unsupported
            0xC4 => {
                let mut s = seg;
                while !s.is_empty() {
                    if s.len() < 17 {
                        return corrupt("short Huffman table");
                    }
                    let (class, id) = (s[0] >> 4, (s[0] & 15) as usize);
                    if class > 1 || id > 3 {
                        return corrupt("bad Huffman table id");
                    }
                    let mut counts = [0u8; 16];
                    counts.copy_from_slice(&s[1..17]);
                    let n: usize = counts.iter().map(|&c| c as usize).sum();
                    if s.len() < 17 + n {
                        return corrupt("short Huffman table");
                    }
                    let t = Huffman::new(&counts, s[17..17 + n].to_vec(), class == 0)?;
                    if class == 0 {
                        dc_tables[id] = Some(t);
                    } else {
                        ac_tables[id] = Some(t);
                    }
                    s = &s[17 + n..];
                }
            }
            0xDB => {
                let mut s = seg;
                while !s.is_empty() {
                    let (prec, id) = (s[0] >> 4, (s[0] & 15) as usize);
                    if id > 3 || prec > 1 {
                        return corrupt("bad quantisation table id");
                    }
                    let n = if prec == 0 { 64 } else { 128 };
                    if s.len() < 1 + n {
                        return corrupt("short quantisation table");
                    }
                    let mut t = [0u16; 64];
                    for (k, &nat) in NATURAL[..64].iter().enumerate() {
                        t[nat] = if prec == 0 {
                            s[1 + k] as u16
                        } else {
                            u16::from_be_bytes([s[1 + 2 * k], s[2 + 2 * k]])
                        };
                    }
                    qt[id] = Some(t);
                    s = &s[1 + n..];
                }
            }
            0xDD => {
                if seg.len() < 2 {
                    return corrupt("short restart interval marker");
                }
                restart_interval = u16::from_be_bytes([seg[0], seg[1]]) as usize;
            }
            0xDC => {
                return Err(JpegError::Unsupported(
                    "a DNL marker (height defined after the scan)".into(),
                ))
            }
            0xE0 if seg.len() >= 14 && seg.starts_with(b"JFIF\0") => jfif = true,
            0xE1 => {
                if seg.starts_with(b"Exif\0\0") {
                    // Pillow concatenates the payloads of further Exif segments.
                    match &mut exif {
                        Some(e) => e.extend_from_slice(&seg[6..]),
                        None => exif = Some(seg.to_vec()),
                    }
                } else if let Some(rest) = seg.strip_prefix(b"http://ns.adobe.com/xap/1.0/\0") {
                    xmp = Some(rest.to_vec());
                }
            }
            0xEE if seg.len() >= 12 && seg.starts_with(b"Adobe") => adobe = Some(seg[11]),
            0xDA => {
                let f = frame
                    .as_mut()
                    .ok_or_else(|| JpegError::Corrupt("a scan before the frame header".into()))?;
                if !seen_scan {
                    seen_scan = true;
                    // Allocate once the frame, and so the size limits, are known.
                    for c in &f.comps {
                        planes.push(vec![0u8; c.bw * 8 * c.bh * 8]);
                        if f.progressive {
                            coefs.push(vec![0i16; c.bw * c.bh * 64]);
                        }
                    }
                }
                let scan = parse_scan(seg, f)?;
                for &ci in &scan.comps {
                    let c = &mut f.comps[ci];
                    if c.quant.is_none() {
                        c.quant = Some(qt[c.tq].ok_or_else(|| {
                            JpegError::Corrupt(format!("quantisation table {} is not defined", c.tq))
                        })?);
                    }
                }
                let tables = ScanTables {
                    dc: &dc_tables,
                    ac: &ac_tables,
                };
                let mut bits = Bits::new(data, pos);
                if f.progressive {
                    for &ci in &scan.comps {
                        coef_bits[ci][scan.ss..=scan.se].fill(scan.al as i32);
                    }
                    decode_progressive_scan(f, &scan, &tables, restart_interval, &mut bits, &mut coefs)?;
                } else {
                    decode_sequential_scan(f, &scan, &tables, restart_interval, &mut bits, &mut planes)?;
                }
                if bits.overran() {
                    return Err(JpegError::Truncated);
                }
                pos = bits.pos;
                pending_marker = bits.marker;
            }
            _ => {} // other APPn, COM, ...: skipped
        }
    }
    let mut f = frame.ok_or_else(|| JpegError::Corrupt("no frame header".into()))?;
    if !seen_scan {
        return corrupt("no scan");
    }
    if f.progressive {
        check_no_block_smoothing(&f, &coef_bits)?;
        for (ci, c) in f.comps.iter_mut().enumerate() {
            // A component without a scan decodes as zeros (its quant table was never latched).
            let q = c.quant.unwrap_or([0; 64]);
            let co = std::mem::take(&mut coefs[ci]);
            let stride = c.bw * 8;
            for by in 0..c.bh {
                for bx in 0..c.bw {
                    let blk: &[i16; 64] = co[(by * c.bw + bx) * 64..][..64].try_into().unwrap();
                    idct_islow(blk, &q, &mut planes[ci][by * 8 * stride + bx * 8..], stride);
                }
            }
        }
    }
    let space = color_space(&f, jfif, adobe);
    let rgb = to_rgb(&f, &planes, space)?;
    Ok(Decoded {
        width: f.width,
        height: f.height,
        rgb,
        exif,
        xmp,
    })
}

fn parse_frame(s: &[u8], progressive: bool, max_pixels: usize, max_side: usize) -> R<Frame> {
    if s.len() < 6 {
        return corrupt("short frame header");
    }
    if s[0] != 8 {
        return Err(JpegError::Unsupported(format!(
            "{}-bit JPEG samples (only 8-bit JPEGs are read, as by Pillow)",
            s[0]
        )));
    }
    let height = u16::from_be_bytes([s[1], s[2]]) as usize;
    let width = u16::from_be_bytes([s[3], s[4]]) as usize;
    let n = s[5] as usize;
    if width == 0 || height == 0 {
        return Err(JpegError::Unsupported(format!(
            "a {width}x{height} frame (a zero height is only defined later by a DNL marker)"
        )));
    }
    if width > max_side || height > max_side || width * height > max_pixels {
        return Err(JpegError::TooLarge { width, height });
    }
    if !matches!(n, 1 | 3 | 4) {
        return corrupt(format!("{n} components (Pillow reads 1, 3 or 4)"));
    }
    if s.len() < 6 + 3 * n {
        return corrupt("short frame header");
    }
    let mut comps = Vec::with_capacity(n);
    for i in 0..n {
        let c = &s[6 + 3 * i..9 + 3 * i];
        let (h, v) = ((c[1] >> 4) as usize, (c[1] & 15) as usize);
        if !(1..=4).contains(&h) || !(1..=4).contains(&v) {
            return corrupt(format!("bad sampling factors {h}x{v}"));
        }
        if c[2] > 3 {
            return corrupt("bad quantisation table id");
        }
        comps.push(Component {
            id: c[0],
            h,
            v,
            tq: c[2] as usize,
            bw: 0,
            bh: 0,
            dw: 0,
            dh: 0,
            quant: None,
        });
    }
    let hmax = comps.iter().map(|c| c.h).max().unwrap_or(1);
    let vmax = comps.iter().map(|c| c.v).max().unwrap_or(1);
    for c in &comps {
        // libjpeg: "Fractional sampling not implemented yet".
        if hmax % c.h != 0 || vmax % c.v != 0 {
            return Err(JpegError::Unsupported(format!(
                "sampling factors {}x{} against {hmax}x{vmax} (fractional upsampling)",
                c.h, c.v
            )));
        }
    }
    let mcux = width.div_ceil(8 * hmax);
    let mcuy = height.div_ceil(8 * vmax);
    for c in &mut comps {
        c.dw = (width * c.h).div_ceil(hmax);
        c.dh = (height * c.v).div_ceil(vmax);
        c.bw = mcux * c.h;
        c.bh = mcuy * c.v;
        if n == 1 {
            // A single component is never interleaved: its blocks cover just the image.
            c.bw = c.bw.max(c.dw.div_ceil(8));
            c.bh = c.bh.max(c.dh.div_ceil(8));
        }
    }
    Ok(Frame {
        progressive,
        width,
        height,
        comps,
        hmax,
        vmax,
        mcux,
        mcuy,
    })
}

struct Scan {
    comps: Vec<usize>,
    td: Vec<usize>,
    ta: Vec<usize>,
    ss: usize,
    se: usize,
    ah: u32,
    al: u32,
}

struct ScanTables<'t> {
    dc: &'t [Option<Huffman>; 4],
    ac: &'t [Option<Huffman>; 4],
}

fn parse_scan(s: &[u8], f: &Frame) -> R<Scan> {
    if s.is_empty() {
        return corrupt("short scan header");
    }
    let n = s[0] as usize;
    if n == 0 || n > 4 || s.len() < 1 + 2 * n + 3 {
        return corrupt("bad scan header");
    }
    let mut scan = Scan {
        comps: vec![],
        td: vec![],
        ta: vec![],
        ss: 0,
        se: 63,
        ah: 0,
        al: 0,
    };
    for i in 0..n {
        let id = s[1 + 2 * i];
        let ci = f
            .comps
            .iter()
            .position(|c| c.id == id)
            .ok_or_else(|| JpegError::Corrupt(format!("scan names an unknown component {id}")))?;
        if scan.comps.contains(&ci) {
            return corrupt("a component twice in one scan");
        }
        scan.comps.push(ci);
        scan.td.push((s[2 + 2 * i] >> 4) as usize & 3);
        scan.ta.push((s[2 + 2 * i] & 15) as usize & 3);
    }
    let p = &s[1 + 2 * n..];
    scan.ss = p[0] as usize;
    scan.se = p[1] as usize;
    scan.ah = (p[2] >> 4) as u32;
    scan.al = (p[2] & 15) as u32;
    if n > 1 {
        // libjpeg: at most 10 blocks in an interleaved MCU.
        let blocks: usize = scan.comps.iter().map(|&ci| f.comps[ci].h * f.comps[ci].v).sum();
        if blocks > 10 {
            return corrupt("sampling factors too large for an interleaved scan");
        }
    }
    if f.progressive {
        // libjpeg's checks (jdphuff.c start_pass_phuff_decoder).
        let bad = if scan.ss == 0 {
            scan.se != 0
        } else {
            scan.ss > scan.se || scan.se > 63 || n != 1
        } || (scan.ah != 0 && scan.al + 1 != scan.ah)
            || scan.al > 13;
        if bad {
            return corrupt(format!(
                "invalid progressive parameters Ss={} Se={} Ah={} Al={}",
                scan.ss, scan.se, scan.ah, scan.al
            ));
        }
    } else {
        // Sequential scans code the whole block; libjpeg ignores Ss/Se/Ah/Al there.
        scan.ss = 0;
        scan.se = 63;
        scan.ah = 0;
        scan.al = 0;
    }
    Ok(scan)
}

fn table<'t>(t: &'t [Option<Huffman>; 4], id: usize, what: &str) -> R<&'t Huffman> {
    t[id]
        .as_ref()
        .ok_or_else(|| JpegError::Corrupt(format!("{what} Huffman table {id} is not defined")))
}

/// The blocks an MCU covers: `(component index in the scan, block x, block y)`, for MCU
/// `(mx, my)`. Non-interleaved scans have one block per MCU.
fn mcu_blocks(f: &Frame, scan: &Scan, mx: usize, my: usize, out: &mut Vec<(usize, usize, usize)>) {
    out.clear();
    if scan.comps.len() == 1 {
        out.push((0, mx, my));
    } else {
        for (si, &ci) in scan.comps.iter().enumerate() {
            let c = &f.comps[ci];
            for v in 0..c.v {
                for h in 0..c.h {
                    out.push((si, mx * c.h + h, my * c.v + v));
                }
            }
        }
    }
}

/// MCU grid of a scan.
fn scan_mcus(f: &Frame, scan: &Scan) -> (usize, usize) {
    if scan.comps.len() == 1 {
        let c = &f.comps[scan.comps[0]];
        (c.dw.div_ceil(8), c.dh.div_ceil(8))
    } else {
        (f.mcux, f.mcuy)
    }
}

fn decode_sequential_scan(
    f: &Frame,
    scan: &Scan,
    t: &ScanTables,
    restart: usize,
    bits: &mut Bits,
    planes: &mut [Vec<u8>],
) -> R<()> {
    let dc: Vec<&Huffman> = scan.td.iter().map(|&i| table(t.dc, i, "DC")).collect::<R<_>>()?;
    let ac: Vec<&Huffman> = scan.ta.iter().map(|&i| table(t.ac, i, "AC")).collect::<R<_>>()?;
    let (mw, mh) = scan_mcus(f, scan);
    let mut pred = vec![0i32; scan.comps.len()];
    let mut blocks = Vec::new();
    let mut todo = restart;
    let mut blk = [0i16; 64];
    for my in 0..mh {
        for mx in 0..mw {
            if restart > 0 {
                if todo == 0 {
                    bits.restart();
                    pred.fill(0);
                    todo = restart;
                }
                todo -= 1;
            }
            mcu_blocks(f, scan, mx, my, &mut blocks);
            for &(si, bx, by) in &blocks {
                blk.fill(0);
                let s = bits.decode(dc[si]) as u32;
                let diff = extend(bits.bits(s), s);
                pred[si] = pred[si]
                    .checked_add(diff)
                    .ok_or_else(|| JpegError::Corrupt("DC coefficient overflow".into()))?;
                blk[0] = pred[si] as i16;
                let mut k = 1;
                while k < 64 {
                    let rs = bits.decode(ac[si]);
                    let (r, s) = ((rs >> 4) as usize, (rs & 15) as u32);
                    if s != 0 {
                        k += r;
                        blk[NATURAL[k]] = extend(bits.bits(s), s) as i16;
                    } else if r == 15 {
                        k += 15;
                    } else {
                        break;
                    }
                    k += 1;
                }
                let ci = scan.comps[si];
                let c = &f.comps[ci];
                let q = c.quant.as_ref().expect("latched before the scan");
                let stride = c.bw * 8;
                idct_islow(&blk, q, &mut planes[ci][by * 8 * stride + bx * 8..], stride);
            }
        }
        if bits.overran() {
            return Err(JpegError::Truncated);
        }
    }
    Ok(())
}

fn decode_progressive_scan(
    f: &Frame,
    scan: &Scan,
    t: &ScanTables,
    restart: usize,
    bits: &mut Bits,
    coefs: &mut [Vec<i16>],
) -> R<()> {
    let dc_scan = scan.ss == 0;
    let dc: Vec<&Huffman> = if dc_scan && scan.ah == 0 {
        scan.td.iter().map(|&i| table(t.dc, i, "DC")).collect::<R<_>>()?
    } else {
        vec![]
    };
    let ac = if dc_scan {
        None
    } else {
        Some(table(t.ac, scan.ta[0], "AC")?)
    };
    let (mw, mh) = scan_mcus(f, scan);
    let mut pred = vec![0i32; scan.comps.len()];
    let mut eobrun = 0u32;
    let mut blocks = Vec::new();
    let mut todo = restart;
    let p1: i32 = 1 << scan.al;
    let m1: i32 = -1 << scan.al;
    for my in 0..mh {
        for mx in 0..mw {
            if restart > 0 {
                if todo == 0 {
                    bits.restart();
                    pred.fill(0);
                    eobrun = 0;
                    todo = restart;
                }
                todo -= 1;
            }
            mcu_blocks(f, scan, mx, my, &mut blocks);
            for &(si, bx, by) in &blocks {
                let ci = scan.comps[si];
                let c = &f.comps[ci];
                let blk = &mut coefs[ci][(by * c.bw + bx) * 64..][..64];
                if dc_scan {
                    if scan.ah == 0 {
                        let s = bits.decode(dc[si]) as u32;
                        let diff = extend(bits.bits(s), s);
                        pred[si] = pred[si]
                            .checked_add(diff)
                            .ok_or_else(|| JpegError::Corrupt("DC coefficient overflow".into()))?;
                        blk[0] = pred[si].wrapping_shl(scan.al) as i16;
                    } else if bits.bit() {
                        blk[0] |= p1 as i16;
                    }
                    continue;
                }
                let ac = ac.expect("AC scan has a table");
                if scan.ah == 0 {
                    // AC first pass.
                    if eobrun > 0 {
                        eobrun -= 1;
                        continue;
                    }
                    let mut k = scan.ss;
                    while k <= scan.se {
                        let rs = bits.decode(ac);
                        let (r, s) = ((rs >> 4) as u32, (rs & 15) as u32);
                        if s != 0 {
                            k += r as usize;
                            blk[NATURAL[k]] = extend(bits.bits(s), s).wrapping_shl(scan.al) as i16;
                        } else if r == 15 {
                            k += 15;
                        } else {
                            eobrun = 1 << r;
                            if r != 0 {
                                eobrun += bits.bits(r) as u32;
                            }
                            eobrun -= 1;
                            break;
                        }
                        k += 1;
                    }
                } else {
                    // AC refinement (jdphuff.c decode_mcu_AC_refine).
                    let mut k = scan.ss;
                    if eobrun == 0 {
                        while k <= scan.se {
                            let rs = bits.decode(ac);
                            let mut r = (rs >> 4) as i32;
                            let s = (rs & 15) as u32;
                            let mut newval = 0i32;
                            if s != 0 {
                                newval = if bits.bit() { p1 } else { m1 };
                            } else if r != 15 {
                                eobrun = 1 << r;
                                if r != 0 {
                                    eobrun += bits.bits(r as u32) as u32;
                                }
                                break;
                            }
                            loop {
                                let pos = NATURAL[k];
                                let v = blk[pos] as i32;
                                if v != 0 {
                                    if bits.bit() && (v & p1) == 0 {
                                        blk[pos] = if v >= 0 { v + p1 } else { v + m1 } as i16;
                                    }
                                } else {
                                    r -= 1;
                                    if r < 0 {
                                        break;
                                    }
                                }
                                k += 1;
                                if k > scan.se {
                                    break;
                                }
                            }
                            if s != 0 {
                                blk[NATURAL[k]] = newval as i16;
                            }
                            k += 1;
                        }
                    }
                    if eobrun > 0 {
                        while k <= scan.se {
                            let pos = NATURAL[k];
                            let v = blk[pos] as i32;
                            if v != 0 && bits.bit() && (v & p1) == 0 {
                                blk[pos] = if v >= 0 { v + p1 } else { v + m1 } as i16;
                            }
                            k += 1;
                        }
                        eobrun -= 1;
                    }
                }
            }
        }
        if bits.overran() {
            return Err(JpegError::Truncated);
        }
    }
    Ok(())
}

/// libjpeg applies block smoothing (jdcoefct.c) to progressive images whose scans leave
/// one of the first 9 AC coefficients unrefined; Pillow gets those smoothed pixels. Encoders
/// send every coefficient to full precision, so such files are rare: refuse them clearly.
fn check_no_block_smoothing(f: &Frame, coef_bits: &[[i32; 64]]) -> R<()> {
    if coef_bits.iter().any(|b| b[0] < 0) {
        return Ok(()); // libjpeg smooths only when every DC is at least partly known
    }
    for c in &f.comps {
        let q = c.quant.unwrap_or([0; 64]);
        // The zero-quantiser test of smoothing_ok (DC and the first 9 AC positions).
        if [0usize, 1, 8, 16, 9, 2, 3, 10, 17, 24].iter().any(|&i| q[i] == 0) {
            return Ok(());
        }
    }
    if coef_bits.iter().any(|b| b[1..10].iter().any(|&x| x != 0)) {
        return Err(JpegError::Unsupported(
            "a progressive JPEG whose scans leave low-frequency coefficients incomplete (libjpeg \
             would smooth its blocks); re-save it"
                .into(),
        ));
    }
    Ok(())
}

// jidctint.c constants (CONST_BITS = 13).
const CONST_BITS: u32 = 13;
const PASS1_BITS: u32 = 2;
const FIX_0_298631336: i64 = 2446;
const FIX_0_390180644: i64 = 3196;
const FIX_0_541196100: i64 = 4433;
const FIX_0_765366865: i64 = 6270;
const FIX_0_899976223: i64 = 7373;
const FIX_1_175875602: i64 = 9633;
const FIX_1_501321110: i64 = 12299;
const FIX_1_847759065: i64 = 15137;
const FIX_1_961570560: i64 = 16069;
const FIX_2_053119869: i64 = 16819;
const FIX_2_562915447: i64 = 20995;
const FIX_3_072711026: i64 = 25172;

#[inline]
fn descale(x: i64, n: u32) -> i64 {
    (x + (1 << (n - 1))) >> n
}

/// libjpeg's post-IDCT range limit: the low 10 bits of the value, read as signed, plus 128,
/// clamped to 0..=255 (values that wrap past ±512 wrap here too).
#[inline]
fn idct_limit(x: i64) -> u8 {
    let v = (((x as i32) << 22) >> 22) + 128;
    v.clamp(0, 255) as u8
}

/// The 1-D even/odd butterflies shared by both passes: returns the 8 outputs before
/// descaling, `in` in natural order (0..8 along the pass).
#[inline(always)]
fn idct_1d(i: [i64; 8]) -> [i64; 8] {
    // Even part.
    let z2 = i[2];
    let z3 = i[6];
    let z1 = (z2 + z3) * FIX_0_541196100;
    let tmp2 = z1 + z3 * -FIX_1_847759065;
    let tmp3 = z1 + z2 * FIX_0_765366865;
    let tmp0 = (i[0] + i[4]) << CONST_BITS;
    let tmp1 = (i[0] - i[4]) << CONST_BITS;
    let tmp10 = tmp0 + tmp3;
    let tmp13 = tmp0 - tmp3;
    let tmp11 = tmp1 + tmp2;
    let tmp12 = tmp1 - tmp2;
    // Odd part.
    let (mut t0, mut t1, mut t2, mut t3) = (i[7], i[5], i[3], i[1]);
    let z1 = t0 + t3;
    let z2 = t1 + t2;
    let z3 = t0 + t2;
    let z4 = t1 + t3;
    let z5 = (z3 + z4) * FIX_1_175875602;
    t0 *= FIX_0_298631336;
    t1 *= FIX_2_053119869;
    t2 *= FIX_3_072711026;
    t3 *= FIX_1_501321110;
    let z1 = z1 * -FIX_0_899976223;
    let z2 = z2 * -FIX_2_562915447;
    let z3 = z3 * -FIX_1_961570560 + z5;
    let z4 = z4 * -FIX_0_390180644 + z5;
    t0 += z1 + z3;
    t1 += z2 + z4;
    t2 += z2 + z3;
    t3 += z1 + z4;
    [
        tmp10 + t3,
        tmp11 + t2,
        tmp12 + t1,
        tmp13 + t0,
        tmp13 - t0,
        tmp12 - t1,
        tmp11 - t2,
        tmp10 - t3,
    ]
}

/// libjpeg's `jpeg_idct_islow`: dequantise, 8x8 inverse DCT, level shift and range limit
/// into `out` (row stride `stride`).
fn idct_islow(blk: &[i16; 64], q: &[u16; 64], out: &mut [u8], stride: usize) {
    // libjpeg keeps quantisers as 16-bit signed multipliers.
    let deq = |k: usize| blk[k] as i64 * (q[k] as i16) as i64;
    let mut ws = [0i32; 64];
    for col in 0..8 {
        if (1..8).all(|r| blk[r * 8 + col] == 0) {
            let dc = (deq(col) << PASS1_BITS) as i32;
            for r in 0..8 {
                ws[r * 8 + col] = dc;
            }
            continue;
        }
        let o = idct_1d(std::array::from_fn(|r| deq(r * 8 + col)));
        for r in 0..8 {
            ws[r * 8 + col] = descale(o[r], CONST_BITS - PASS1_BITS) as i32;
        }
    }
    for row in 0..8 {
        let w = &ws[row * 8..row * 8 + 8];
        let dst = &mut out[row * stride..row * stride + 8];
        if w[1..].iter().all(|&x| x == 0) {
            let v = idct_limit(descale(w[0] as i64, PASS1_BITS + 3));
            dst.fill(v);
            continue;
        }
        let o = idct_1d(std::array::from_fn(|c| w[c] as i64));
        for c in 0..8 {
            dst[c] = idct_limit(descale(o[c], CONST_BITS + PASS1_BITS + 3));
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Space {
    Gray,
    YCbCr,
    Rgb,
    Cmyk,
    Ycck,
}

/// libjpeg's guess of the colour space (jdapimin.c `default_decompress_parms`).
fn color_space(f: &Frame, jfif: bool, adobe: Option<u8>) -> Space {
    match f.comps.len() {
        1 => Space::Gray,
        3 => {
            if jfif {
                Space::YCbCr
            } else if let Some(t) = adobe {
                if t == 0 {
                    Space::Rgb
                } else {
                    Space::YCbCr
                }
            } else {
                let ids: Vec<u8> = f.comps.iter().map(|c| c.id).collect();
                if ids == [b'R', b'G', b'B'] {
                    Space::Rgb
                } else {
                    Space::YCbCr
                }
            }
        }
        _ => match adobe {
            Some(0) | None => Space::Cmyk,
            Some(_) => Space::Ycck,
        },
    }
}

/// libjpeg's YCbCr → RGB tables (jdcolor.c, SCALEBITS = 16).
struct ColorTables {
    cr_r: [i32; 256],
    cb_b: [i32; 256],
    cr_g: [i32; 256],
    cb_g: [i32; 256],
}

impl ColorTables {
    fn new() -> ColorTables {
        const ONE_HALF: i32 = 1 << 15;
        let fix = |x: f64| (x * 65536.0 + 0.5) as i32;
        let mut t = ColorTables {
            cr_r: [0; 256],
            cb_b: [0; 256],
            cr_g: [0; 256],
            cb_g: [0; 256],
        };
        for i in 0..256 {
            let x = i as i32 - 128;
            t.cr_r[i] = (fix(1.40200) * x + ONE_HALF) >> 16;
            t.cb_b[i] = (fix(1.77200) * x + ONE_HALF) >> 16;
            t.cr_g[i] = -fix(0.71414) * x;
            t.cb_g[i] = -fix(0.34414) * x + ONE_HALF;
        }
        t
    }

    #[inline]
    fn rgb(&self, y: u8, cb: u8, cr: u8) -> [u8; 3] {
        let y = y as i32;
        let (cb, cr) = (cb as usize, cr as usize);
        [
            (y + self.cr_r[cr]).clamp(0, 255) as u8,
            (y + ((self.cb_g[cb] + self.cr_g[cr]) >> 16)).clamp(0, 255) as u8,
            (y + self.cb_b[cb]).clamp(0, 255) as u8,
        ]
    }
}

/// Pillow's `cmyk2rgb` (Convert.c) on Adobe-inverted CMYK ("CMYK;I").
#[inline]
fn cmyk_inverted_to_rgb(c: u8, m: u8, y: u8, k: u8) -> [u8; 3] {
    // Pillow inverts what libjpeg returns, then computes nk - c·nk/255 per channel.
    let nk = k as i32; // 255 - (255 - k)
    let ch = |v: u8| {
        let v = 255 - v as i32;
        let tmp = v * nk + 128;
        let muldiv = ((tmp >> 8) + tmp) >> 8;
        (nk - muldiv).clamp(0, 255) as u8
    };
    [ch(c), ch(m), ch(y)]
}

/// One upsampled row of a component (jdsample.c), `out.len()` = image width.
fn upsample_row(f: &Frame, c: &Component, plane: &[u8], y: usize, out: &mut [u8], tmp: &mut Vec<i32>) {
    let stride = c.bw * 8;
    let (hr, vr) = (f.hmax / c.h, f.vmax / c.v);
    let w = out.len();
    let row = |iy: usize| &plane[iy * stride..iy * stride + c.dw];
    match (hr, vr) {
        (1, 1) => out.copy_from_slice(&row(y)[..w]),
        (2, 1) if c.dw > 2 => {
            let r = row(y);
            let last = c.dw - 1;
            for (x, o) in out.iter_mut().enumerate() {
                let i = x / 2;
                let v = 3 * r[i] as u32;
                *o = if x % 2 == 0 {
                    ((v + r[i.saturating_sub(1)] as u32 + 1) >> 2) as u8
                } else {
                    ((v + r[(i + 1).min(last)] as u32 + 2) >> 2) as u8
                };
            }
        }
        (1, 2) => {
            let iy = y / 2;
            let (other, bias) = if y.is_multiple_of(2) {
                (iy.saturating_sub(1), 1)
            } else {
                ((iy + 1).min(c.dh - 1), 2)
            };
            let (r0, r1) = (row(iy), row(other));
            for (x, o) in out.iter_mut().enumerate() {
                *o = ((3 * r0[x] as u32 + r1[x] as u32 + bias) >> 2) as u8;
            }
        }
        (2, 2) if c.dw > 2 => {
            let iy = y / 2;
            let other = if y.is_multiple_of(2) {
                iy.saturating_sub(1)
            } else {
                (iy + 1).min(c.dh - 1)
            };
            let (r0, r1) = (row(iy), row(other));
            tmp.clear();
            tmp.extend(r0.iter().zip(r1).map(|(&a, &b)| 3 * a as i32 + b as i32));
            let last = c.dw - 1;
            for (x, o) in out.iter_mut().enumerate() {
                let i = x / 2;
                let v = 3 * tmp[i];
                *o = if x % 2 == 0 {
                    ((v + tmp[i.saturating_sub(1)] + 8) >> 4) as u8
                } else {
                    ((v + tmp[(i + 1).min(last)] + 7) >> 4) as u8
                };
            }
        }
        _ => {
            // Replication (int_upsample, h2v1_upsample, h2v2_upsample).
            let r = row((y / vr).min(c.dh - 1));
            for (x, o) in out.iter_mut().enumerate() {
                *o = r[(x / hr).min(c.dw - 1)];
            }
        }
    }
}

fn to_rgb(f: &Frame, planes: &[Vec<u8>], space: Space) -> R<Vec<u8>> {
    let (w, h) = (f.width, f.height);
    let mut rgb = vec![0u8; w * h * 3];
    if space == Space::Gray {
        let c = &f.comps[0];
        let stride = c.bw * 8;
        for y in 0..h {
            let src = &planes[0][y * stride..y * stride + w];
            for (o, &l) in rgb[y * w * 3..(y + 1) * w * 3].chunks_exact_mut(3).zip(src) {
                o.fill(l);
            }
        }
        return Ok(rgb);
    }
    let n = f.comps.len();
    let mut rows = vec![vec![0u8; w]; n];
    let mut tmp = Vec::new();
    let tables = ColorTables::new();
    for y in 0..h {
        for ci in 0..n {
            upsample_row(f, &f.comps[ci], &planes[ci], y, &mut rows[ci], &mut tmp);
        }
        let out = &mut rgb[y * w * 3..(y + 1) * w * 3];
        match space {
            Space::YCbCr => {
                for (x, o) in out.chunks_exact_mut(3).enumerate() {
                    o.copy_from_slice(&tables.rgb(rows[0][x], rows[1][x], rows[2][x]));
                }
            }
            Space::Rgb => {
                for (x, o) in out.chunks_exact_mut(3).enumerate() {
                    o.copy_from_slice(&[rows[0][x], rows[1][x], rows[2][x]]);
                }
            }
            Space::Cmyk => {
                for (x, o) in out.chunks_exact_mut(3).enumerate() {
                    o.copy_from_slice(&cmyk_inverted_to_rgb(rows[0][x], rows[1][x], rows[2][x], rows[3][x]));
                }
            }
            Space::Ycck => {
                for (x, o) in out.chunks_exact_mut(3).enumerate() {
                    // libjpeg's ycck_cmyk_convert: CMY = 255 - RGB of the YCbCr triple.
                    let [r, g, b] = tables.rgb(rows[0][x], rows[1][x], rows[2][x]);
                    o.copy_from_slice(&cmyk_inverted_to_rgb(255 - r, 255 - g, 255 - b, rows[3][x]));
                }
            }
            Space::Gray => unreachable!("handled above"),
        }
    }
    Ok(rgb)
}
