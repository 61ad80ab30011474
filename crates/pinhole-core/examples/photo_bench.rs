//! Times decoding and resizing a photo as transformers' PIL path does it
//! (`Image.open().convert('RGB').resize((s, s), BICUBIC)`), for BENCHMARKS.md:
//!
//!     python tools/make_jpeg_corpus.py --photo /tmp/photo12mp.jpg
//!     cargo run --release -p pinhole-core --example photo_bench -- /tmp/photo12mp.jpg [PIL_PREFIX]
//!
//! With PIL_PREFIX, also compares each result with Pillow's `PIL_PREFIX{s}.png` byte for byte.

use std::time::Instant;

use pinhole_core::hf::image::{decode_image, resize_bicubic};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).expect("usage: photo_bench PHOTO.jpg [PIL_PREFIX]");
    let bytes = std::fs::read(path).expect("read the photo");
    for size in [224usize, 448, 896] {
        let mut best = (f64::MAX, 0.0, 0.0);
        let mut out = None;
        for _ in 0..3 {
            let t0 = Instant::now();
            let img = decode_image(&bytes, path).expect("decode");
            let t1 = Instant::now();
            let r = resize_bicubic(&img, size, size).expect("resize");
            let t2 = Instant::now();
            let (d, z) = ((t1 - t0).as_secs_f64() * 1e3, (t2 - t1).as_secs_f64() * 1e3);
            if d + z < best.0 {
                best = (d + z, d, z);
            }
            out = Some(r);
        }
        let (total, d, z) = best;
        print!("pinhole {size}: decode {d:.0} ms resize {z:.0} ms total {total:.0} ms");
        if let Some(prefix) = args.get(2) {
            let want = image::open(format!("{prefix}{size}.png"))
                .expect("Pillow's result")
                .to_rgb8();
            let same = want.as_raw() == &out.unwrap().data;
            print!("  identical to Pillow: {same}");
        }
        println!();
    }
}
