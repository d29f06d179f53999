//! Helpers shared by the codec tests.

/// `wire` cut at `points` (taken modulo its length, sorted, deduplicated).
pub fn split_at_points(wire: &[u8], mut points: Vec<usize>) -> Vec<&[u8]> {
    points.iter_mut().for_each(|p| *p %= wire.len() + 1);
    points.sort_unstable();
    points.dedup();
    let mut out = Vec::new();
    let mut last = 0;
    for p in points {
        out.push(&wire[last..p]);
        last = p;
    }
    out.push(&wire[last..]);
    out
}
