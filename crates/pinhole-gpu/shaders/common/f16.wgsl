// common/f16.wgsl — f16 weights without `shader-f16`: two f16 halves per u32 word, element 2i
// in the low half, decoded with unpack2x16float (core WGSL), so products and sums stay f32.
// Includer provides: nothing.

// Element `h` of an f16 array, given the word that holds it (word h/2 of the array).
fn f16_half(word: u32, h: u32) -> f32 {
    let pair = unpack2x16float(word);
    return select(pair.x, pair.y, (h & 1u) == 1u);
}
