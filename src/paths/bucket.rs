//! The bucket of a tenant: 64-bit FNV-1a, a tiny, stable hash for anything
//! that ends up on disk (bucket names, template keys), unlike `std`'s
//! randomised hasher.

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// An FNV-1a 64 hasher.
pub(crate) struct Fnv1a(u64);

impl Fnv1a {
    pub(crate) fn new() -> Self {
        Fnv1a(OFFSET)
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(PRIME);
        }
    }

    pub(crate) fn finish(&self) -> u64 {
        self.0
    }
}

/// The bucket of a tenant: 64-bit FNV-1a of the name's bytes, modulo
/// `buckets`.
///
/// This function is part of the on-disk format: it never changes between
/// releases or platforms (golden vectors in the tests pin it).
///
/// ```
/// assert_eq!(tenanted::bucket_of("acme", 1), 0);
/// assert!(tenanted::bucket_of("acme", 256) < 256);
/// ```
pub fn bucket_of(tenant: &str, buckets: u32) -> u32 {
    let mut hash = Fnv1a::new();
    hash.write(tenant.as_bytes());
    (hash.finish() % u64::from(buckets.max(1))) as u32
}

/// Hex digits in a bucket directory name: enough for `buckets - 1`.
pub(super) fn width(buckets: u32) -> usize {
    let max = buckets.saturating_sub(1);
    ((u32::BITS - max.leading_zeros()).div_ceil(4)).max(1) as usize
}

/// The bucket directory name of `tenant`: its bucket in lowercase hex,
/// zero-padded to [`width`].
pub(super) fn label(tenant: &str, buckets: u32) -> String {
    format!(
        "{:0width$x}",
        bucket_of(tenant, buckets),
        width = width(buckets)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_published_fnv1a_64_vectors() {
        for (input, expected) in [
            ("", 0xcbf2_9ce4_8422_2325u64),
            ("a", 0xaf63_dc4c_8601_ec8c),
            ("foobar", 0x8594_4171_f739_67e8),
        ] {
            let mut h = Fnv1a::new();
            h.write(input.as_bytes());
            assert_eq!(h.finish(), expected, "{input:?}");
        }
    }

    #[test]
    fn labels_are_zero_padded_lowercase_hex() {
        assert_eq!((width(1), width(16), width(17), width(256)), (1, 1, 2, 2));
        assert_eq!(width(4096), 3);
        assert_eq!(label("acme", 1), "0");
        let label = label("acme", 256);
        assert_eq!(label, format!("{:02x}", bucket_of("acme", 256)));
    }
}
