//! A series with one `u32` slot per whole wall-clock second, kept contiguous from its first
//! second: receive counts per origin group, and the loop-lag probe's per-second maxima.

/// Most seconds kept (a day, 338 KiB): a second further from the first one can only come
/// from a stepped clock, and is left out of the series (it still counts everywhere else).
const MAX_SECONDS: u64 = 86_400;

#[derive(Debug, Default)]
pub struct PerSecond {
    /// The wall-clock second of `values[0]`.
    pub start_s: u64,
    pub values: Vec<u32>,
}

impl PerSecond {
    /// The slot of second `sec`, grown (with zeros) to reach it; `None` beyond `MAX_SECONDS`.
    pub fn slot(&mut self, sec: u64) -> Option<&mut u32> {
        if self.values.is_empty() {
            self.start_s = sec;
        }
        if sec < self.start_s {
            // The clock went back: keep the span contiguous by growing it at the front.
            let shift = self.start_s - sec;
            if shift + self.values.len() as u64 > MAX_SECONDS {
                return None;
            }
            self.values
                .splice(0..0, std::iter::repeat_n(0, shift as usize));
            self.start_s = sec;
        }
        let i = sec - self.start_s;
        if i >= MAX_SECONDS {
            return None;
        }
        let i = i as usize;
        if i >= self.values.len() {
            self.values.resize(i + 1, 0);
        }
        Some(&mut self.values[i])
    }
}
