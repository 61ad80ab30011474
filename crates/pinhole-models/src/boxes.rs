//! PaliGemma's detection output: `<locYYYY><locXXXX><locYYYY><locXXXX> label ; …`, four
//! location tokens per box (y_min, x_min, y_max, x_max on a 0..1023 grid), then the label.

#[derive(Clone, Debug, PartialEq)]
pub struct DetBox {
    /// Normalised coordinates in [0, 1]: x_min, y_min, x_max, y_max.
    pub x_min: f32,
    pub y_min: f32,
    pub x_max: f32,
    pub y_max: f32,
    pub label: String,
}

/// Parses every `<loc….>`×4 group and the label text after it (up to `;` or the next box).
pub fn parse_boxes(text: &str) -> Vec<DetBox> {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        let mut locs = Vec::new();
        let mut s = rest.trim_start();
        while locs.len() < 4 {
            match s.strip_prefix("<loc").and_then(|t| t.get(..5).map(|n| (n, &t[5..]))) {
                Some((num, tail)) if num.ends_with('>') => match num[..4].parse::<u32>() {
                    Ok(v) if v < 1024 => {
                        locs.push(v as f32 / 1024.0);
                        s = tail;
                    }
                    _ => break,
                },
                _ => break,
            }
        }
        if locs.len() == 4 {
            let end = s.find(';').unwrap_or(s.len());
            // The label also ends at the next tag: another box, or a special token such as
            // `<eos>` when the text was decoded with special tokens kept (as it must be for
            // tokenizers that mark `<locYYYY>` special).
            let next_tag = s.find('<').unwrap_or(s.len());
            let cut = end.min(next_tag);
            let label = s[..cut].trim().to_string();
            out.push(DetBox {
                y_min: locs[0],
                x_min: locs[1],
                y_max: locs[2],
                x_max: locs[3],
                label,
            });
            rest = s[cut..].trim_start_matches(';');
        } else {
            // Skip to the next possible box start.
            match rest.get(1..).and_then(|r| r.find("<loc").map(|i| i + 1)) {
                Some(i) => rest = &rest[i..],
                None => break,
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_stops_at_a_special_token() {
        let b = parse_boxes("<loc0597><loc0377><loc0916><loc0694> circle<eos>");
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].label, "circle");
    }

    #[test]
    fn parses_two_boxes_and_skips_junk() {
        let b = parse_boxes(
            "<loc0100><loc0200><loc0300><loc0400> red circle ; <loc0000><loc0000><loc1023><loc1023> square",
        );
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].label, "red circle");
        assert!((b[0].y_min - 100.0 / 1024.0).abs() < 1e-6 && (b[0].x_max - 400.0 / 1024.0).abs() < 1e-6);
        assert_eq!(b[1].label, "square");
        assert!(parse_boxes("no boxes <loc0001> here").is_empty());
    }
}
