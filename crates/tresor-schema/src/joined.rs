//! [`with_joined`]: byte strings joined without an allocation when they are short (AADs and
//! token domains, on the hot path of every seal, open and typed-record key).

/// Bytes joined on the stack; longer joins go to the heap.
const ROOM: usize = 160;

/// Runs `f` with `parts` joined into one byte string: on the stack when they fit in 160
/// bytes (every AAD and domain tresor builds for its catalog tables), else in a `Vec`.
pub(crate) fn with_joined<R>(parts: &[&[u8]], f: impl FnOnce(&[u8]) -> R) -> R {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len > ROOM {
        return f(&parts.concat());
    }
    let mut room = [0u8; ROOM];
    let mut at = 0;
    for part in parts {
        room[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    f(&room[..len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_like_concat_on_the_stack_and_on_the_heap() {
        let long = [7u8; ROOM];
        for parts in [
            vec![],
            vec![&b""[..]],
            vec![&b"typed/pk/"[..], &b"conversation"[..]],
            vec![&b"a"[..], &long[..ROOM - 1]],
            vec![&b"a"[..], &long[..]],
            vec![&long[..], &long[..], &b"z"[..]],
        ] {
            assert_eq!(with_joined(&parts, <[u8]>::to_vec), parts.concat());
        }
    }
}
