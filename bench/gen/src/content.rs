//! The bytes that go into data extents: incompressible random bytes, and
//! compressible text made of words from a small built-in vocabulary.
//!
//! Both come from one seeded ChaCha stream so an image is a pure function of
//! its seed. Neither ever produces a 4 KiB run of zeros, so the data/hole map
//! of a generated file is exactly the planned layout.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// 128 words (a power of two, so a random byte picks one without bias).
const WORDS: [&str; 128] = [
    "block", "volume", "backup", "restore", "snapshot", "chunk", "store", "image", "extent",
    "sparse", "hole", "data", "write", "read", "offset", "length", "index", "catalog", "pool",
    "object", "checksum", "verify", "prune", "retain", "daily", "weekly", "monthly", "the", "a",
    "of", "and", "to", "in", "is", "that", "for", "it", "with", "as", "was", "on", "be", "at",
    "by", "this", "had", "not", "are", "but", "from", "or", "have", "an", "they", "which", "one",
    "you", "were", "her", "all", "she", "there", "would", "their", "we", "him", "been", "has",
    "when", "who", "will", "more", "no", "if", "out", "so", "said", "what", "up", "its", "about",
    "into", "than", "them", "can", "only", "other", "new", "some", "could", "time", "these", "two",
    "may", "then", "do", "first", "any", "my", "now", "such", "like", "our", "over", "man", "me",
    "even", "most", "made", "after", "also", "did", "many", "before", "must", "through", "back",
    "years", "where", "much", "your", "way", "well", "down", "should", "because", "each", "just",
];

/// Words per line of generated text.
const WORDS_PER_LINE: usize = 12;

/// A deterministic source of extent contents.
pub struct Content {
    rng: ChaCha8Rng,
}

impl Content {
    /// `stream` separates independent uses of one seed (layout vs contents).
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Content { rng }
    }

    /// Fills `buf` with incompressible bytes.
    pub fn fill_random(&mut self, buf: &mut [u8]) {
        self.rng.fill_bytes(buf);
    }

    /// Fills `buf` with space-separated words and a newline every few words;
    /// the last word is cut where the buffer ends.
    pub fn fill_text(&mut self, buf: &mut [u8]) {
        let mut pos = 0;
        let mut words = 0;
        while pos < buf.len() {
            for pick in self.rng.next_u64().to_le_bytes() {
                if pos >= buf.len() {
                    break;
                }
                words += 1;
                let sep = if words % WORDS_PER_LINE == 0 {
                    "\n"
                } else {
                    " "
                };
                pos = put(buf, pos, WORDS[usize::from(pick) % WORDS.len()]);
                pos = put(buf, pos, sep);
            }
        }
    }
}

/// Copies as much of `text` as fits at `buf[pos..]`; returns the new end.
fn put(buf: &mut [u8], pos: usize, text: &str) -> usize {
    let n = text.len().min(buf.len() - pos);
    buf[pos..pos + n].copy_from_slice(&text.as_bytes()[..n]);
    pos + n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_words_from_the_vocabulary() {
        let mut buf = vec![0u8; 100_000];
        Content::new(7, 1).fill_text(&mut buf);
        let text = std::str::from_utf8(&buf).expect("text is ASCII");
        let mut tokens: Vec<&str> = text.split_whitespace().collect();
        tokens.pop(); // the last word may be cut short
        assert!(tokens.len() > 10_000);
        assert!(tokens.iter().all(|t| WORDS.contains(t)));
        assert!(text.contains('\n'));
    }

    #[test]
    fn random_bytes_look_uniform() {
        let mut buf = vec![0u8; 1 << 20];
        Content::new(7, 1).fill_random(&mut buf);
        let mut counts = [0u32; 256];
        buf.iter().for_each(|&b| counts[usize::from(b)] += 1);
        // Expected 4096 per value; a real bias or a constant fill breaks this.
        assert!(counts.iter().all(|&c| (3600..4600).contains(&c)));
    }

    #[test]
    fn streams_and_seeds_give_different_bytes() {
        let fill = |seed, stream| {
            let mut buf = vec![0u8; 4096];
            Content::new(seed, stream).fill_random(&mut buf);
            buf
        };
        assert_eq!(fill(1, 1), fill(1, 1));
        assert_ne!(fill(1, 1), fill(2, 1));
        assert_ne!(fill(1, 1), fill(1, 2));
    }
}
