//! Decoded-size limits are checked from the header, before pixel memory is allocated: small
//! files announcing huge images (the reliability probe's reproducers, a valid 20000x20000
//! PNG, JPEG frame headers patched to huge sizes) fail with an error naming the limit, and
//! the whole attempt allocates little (measured with a counting allocator: this file is its
//! own test binary with a single test, so nothing else allocates meanwhile).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use pinhole_core::hf::image::{decode_image, MAX_INPUT_PIXELS, MAX_INPUT_SIDE};
use pinhole_core::Error;

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Relaxed) + l.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Relaxed);
    }
}

#[global_allocator]
static A: Counting = Counting;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A corpus JPEG with its frame header's height and width replaced.
fn jpeg_claiming(w: u16, h: u16) -> Vec<u8> {
    let mut d = std::fs::read(dir().join("photos/base_420_q75.jpg")).unwrap();
    let sof = d
        .windows(2)
        .position(|m| m == [0xFF, 0xC0])
        .expect("a baseline frame header");
    d[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    d[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    d
}

#[test]
fn oversized_images_are_refused_from_the_header_naming_the_limit() {
    let mut cases: Vec<(String, Vec<u8>)> = [
        "gif-35B-511x65535.gif",
        "webp-131B-12826x12914.webp",
        "png-20000x20000.png",
    ]
    .iter()
    .map(|n| {
        (
            n.to_string(),
            std::fs::read(dir().join("image-limits").join(n)).unwrap(),
        )
    })
    .collect();
    cases.push(("jpeg-65535x65535.jpg".into(), jpeg_claiming(65535, 65535)));
    cases.push(("jpeg-12000x9000.jpg".into(), jpeg_claiming(12000, 9000))); // 108 MP
    cases.push(("jpeg-40000x8.jpg".into(), jpeg_claiming(40000, 8))); // a side over the limit
    for (name, bytes) in &cases {
        let before = LIVE.load(Relaxed);
        PEAK.store(before, Relaxed);
        let e = decode_image(bytes, name).expect_err(name);
        let extra = PEAK.load(Relaxed) - before;
        let msg = e.to_string();
        assert!(matches!(e, Error::Unsupported(_)), "{name}: {msg}");
        for needle in [
            name.as_str(),
            "larger than",
            &MAX_INPUT_PIXELS.to_string(),
            &MAX_INPUT_SIDE.to_string(),
        ] {
            assert!(msg.contains(needle), "{name}: {needle:?} missing from: {msg}");
        }
        // The decoders' header parsing only: far below one row of pixels per MB of image.
        assert!(extra < 4 << 20, "{name}: {extra} bytes allocated before refusing it");
    }
    // Under the limits a header is believed: 4000x3000 over a 48x40 image's data decodes as
    // libjpeg does (the scan ends at a marker, the rest is filled in), it is not "too large".
    match decode_image(&jpeg_claiming(4000, 3000), "big-header.jpg") {
        Ok(img) => assert_eq!((img.width, img.height), (4000, 3000)),
        Err(e) => panic!("a 4000x3000 header is within the limits: {e}"),
    }
}
