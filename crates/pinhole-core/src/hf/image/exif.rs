//! EXIF orientation as transformers' `load_image` applies it (`ImageOps.exif_transpose`):
//! the Orientation tag (0x0112) of the EXIF IFD0, or, when EXIF has none, the first
//! `tiff:Orientation` digit of the XMP packet (Pillow's `Image.getexif` does that), and the
//! matching transposition of the pixels.

use super::Rgb8Image;

/// The orientation Pillow's `getexif()` reports: 1-8 from EXIF, else from XMP, else 1. Other
/// values (0, 9, …) are returned as they are and, as in Pillow, change nothing.
/// Malformed EXIF data counts as "no orientation" (Pillow raises on some of it; a photo
/// with a broken maker note should still be captioned).
pub fn orientation(exif: Option<&[u8]>, xmp: Option<&[u8]>) -> u32 {
    if let Some(o) = exif.and_then(exif_orientation) {
        return o;
    }
    xmp.and_then(xmp_orientation).unwrap_or(1)
}

fn exif_orientation(mut data: &[u8]) -> Option<u32> {
    while let Some(rest) = data.strip_prefix(b"Exif\0\0") {
        data = rest;
    }
    if data.len() < 8 {
        return None;
    }
    let le = match &data[..4] {
        b"II*\0" => true,
        b"MM\0*" => false,
        _ => return None,
    };
    let u16_at = |p: usize| -> Option<u32> {
        let b = data.get(p..p + 2)?;
        Some(if le {
            u16::from_le_bytes([b[0], b[1]])
        } else {
            u16::from_be_bytes([b[0], b[1]])
        } as u32)
    };
    let u32_at = |p: usize| -> Option<u32> {
        let b: [u8; 4] = data.get(p..p + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let ifd = u32_at(4)? as usize;
    let n = u16_at(ifd)? as usize;
    let mut found = None;
    for i in 0..n {
        let e = ifd + 2 + 12 * i;
        if u16_at(e)? != 0x0112 {
            continue;
        }
        let (typ, count) = (u16_at(e + 2)?, u32_at(e + 4)?);
        if count != 1 {
            continue; // Pillow returns a tuple, which maps to no transposition
        }
        // The value sits in the entry itself (it is at most 4 bytes).
        found = match typ {
            1 | 7 => data.get(e + 8).map(|&b| b as u32), // BYTE, UNDEFINED
            3 => u16_at(e + 8),                          // SHORT
            4 => u32_at(e + 8),                          // LONG
            _ => None,
        }
        .or(found);
    }
    found
}

/// Pillow: `re.search(rb'tiff:Orientation(="|>)([0-9])', xmp)`.
fn xmp_orientation(xmp: &[u8]) -> Option<u32> {
    const KEY: &[u8] = b"tiff:Orientation";
    let mut from = 0;
    while let Some(i) = xmp[from..].windows(KEY.len()).position(|w| w == KEY) {
        let p = from + i + KEY.len();
        let digit = match xmp.get(p..) {
            Some([b'=', b'"', d, ..]) | Some([b'>', d, ..]) => Some(*d),
            _ => None,
        };
        if let Some(d) = digit.filter(u8::is_ascii_digit) {
            return Some((d - b'0') as u32);
        }
        from = p;
    }
    None
}

/// Applies an orientation as `ImageOps.exif_transpose` does (Pillow's `Image.transpose`
/// with FLIP_LEFT_RIGHT, ROTATE_180, FLIP_TOP_BOTTOM, TRANSPOSE, ROTATE_270, TRANSVERSE or
/// ROTATE_90 for 2-8); other values leave the image as it is.
pub fn apply_orientation(img: Rgb8Image, orientation: u32) -> Rgb8Image {
    if !(2..=8).contains(&orientation) {
        return img;
    }
    let (w, h) = (img.width, img.height);
    let swap = orientation >= 5;
    let (ow, oh) = if swap { (h, w) } else { (w, h) };
    let mut out = vec![0u8; img.data.len()];
    for oy in 0..oh {
        for ox in 0..ow {
            // The source pixel of output pixel (ox, oy).
            let (sx, sy) = match orientation {
                2 => (w - 1 - ox, oy),
                3 => (w - 1 - ox, h - 1 - oy),
                4 => (ox, h - 1 - oy),
                5 => (oy, ox),
                6 => (oy, h - 1 - ox),
                7 => (w - 1 - oy, h - 1 - ox),
                _ => (w - 1 - oy, ox),
            };
            let s = (sy * w + sx) * 3;
            let d = (oy * ow + ox) * 3;
            out[d..d + 3].copy_from_slice(&img.data[s..s + 3]);
        }
    }
    Rgb8Image {
        width: ow,
        height: oh,
        data: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiff(le: bool, typ: u16, count: u32, value: u32) -> Vec<u8> {
        let mut d = Vec::new();
        let p16 = |d: &mut Vec<u8>, v: u16| d.extend(if le { v.to_le_bytes() } else { v.to_be_bytes() });
        let p32 = |d: &mut Vec<u8>, v: u32| d.extend(if le { v.to_le_bytes() } else { v.to_be_bytes() });
        d.extend(if le { b"II*\0" } else { b"MM\0*" });
        p32(&mut d, 8);
        p16(&mut d, 1);
        p16(&mut d, 0x0112);
        p16(&mut d, typ);
        p32(&mut d, count);
        if typ == 3 {
            p16(&mut d, value as u16);
            p16(&mut d, 0);
        } else {
            p32(&mut d, value);
        }
        p32(&mut d, 0);
        d
    }

    #[test]
    fn reads_orientation_from_exif_and_xmp() {
        for o in 1..=8 {
            assert_eq!(orientation(Some(&tiff(true, 3, 1, o)), None), o);
            assert_eq!(orientation(Some(&tiff(false, 3, 1, o)), None), o);
            let mut with_header = b"Exif\0\0".to_vec();
            with_header.extend(tiff(false, 4, 1, o));
            assert_eq!(orientation(Some(&with_header), None), o);
        }
        // Two values: a tuple in Pillow, so no transposition.
        assert_eq!(orientation(Some(&tiff(true, 3, 2, 6)), None), 1);
        assert_eq!(orientation(Some(b"Exif\0\0garbage"), None), 1);
        assert_eq!(orientation(Some(&tiff(true, 3, 1, 6)[..16]), None), 1);
        assert_eq!(orientation(None, Some(b"<x tiff:Orientation=\"6\"/>")), 6);
        assert_eq!(orientation(None, Some(b"<tiff:Orientation>3</tiff:Orientation>")), 3);
        assert_eq!(orientation(None, Some(b"tiff:Orientation=6 tiff:Orientation=\"5\"")), 5);
        // EXIF wins over XMP.
        assert_eq!(
            orientation(Some(&tiff(true, 3, 1, 2)), Some(b"tiff:Orientation=\"6\"")),
            2
        );
    }

    #[test]
    fn transpositions_are_pillows() {
        // 3x2 image whose pixels are numbered 0..6 row by row.
        let img = Rgb8Image::new(3, 2, (0..6u8).flat_map(|v| [v, v, v]).collect()).unwrap();
        let px = |o: u32| -> (usize, usize, Vec<u8>) {
            let r = apply_orientation(img.clone(), o);
            (r.width, r.height, r.data.chunks(3).map(|c| c[0]).collect())
        };
        // 0 1 2
        // 3 4 5
        assert_eq!(px(1), (3, 2, vec![0, 1, 2, 3, 4, 5]));
        assert_eq!(px(2), (3, 2, vec![2, 1, 0, 5, 4, 3]));
        assert_eq!(px(3), (3, 2, vec![5, 4, 3, 2, 1, 0]));
        assert_eq!(px(4), (3, 2, vec![3, 4, 5, 0, 1, 2]));
        assert_eq!(px(5), (2, 3, vec![0, 3, 1, 4, 2, 5]));
        // ROTATE_270 (a quarter turn clockwise).
        assert_eq!(px(6), (2, 3, vec![3, 0, 4, 1, 5, 2]));
        assert_eq!(px(7), (2, 3, vec![5, 2, 4, 1, 3, 0]));
        // ROTATE_90 (a quarter turn counter-clockwise).
        assert_eq!(px(8), (2, 3, vec![2, 5, 1, 4, 0, 3]));
        assert_eq!(px(9), px(1));
    }
}
