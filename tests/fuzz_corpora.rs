//! Every fuzz target's corpus, replayed through the target on the stable toolchain: each
//! input a fuzzer kept (seeds, and every crash it found, which lands in the corpus) must
//! run without a panic. A few hundred seeded mutations of each input go with it, so a
//! change that breaks a decoder on near-valid bytes fails here too. The long runs are
//! libFuzzer's (`fuzz/README.md`).

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod targets;

use std::path::Path;

use ringkeeper::bench::workload::next_random;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 10] = [
    ("request", targets::request),
    ("connect", targets::connect),
    ("four_letter", targets::four_letter),
    ("zoo_cfg", targets::zoo_cfg),
    ("log_segment", targets::log_segment),
    ("snapshot_file", targets::snapshot_file),
    ("tree_ops", targets::tree_ops),
    ("zookeeper_files", targets::zookeeper_files),
    ("certificate_subject", targets::certificate_subject),
    ("key_store", targets::key_store),
];

/// Mutations per corpus input: bit flips, overwritten bytes, cuts and repeats.
const MUTATIONS_PER_INPUT: u64 = 64;

fn corpus(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(name);
    let mut inputs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a corpus entry").path();
            (path.display().to_string(), std::fs::read(&path).expect("a corpus file"))
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "the {name} corpus has seeds");
    inputs
}

/// The mutations are the same on every run: the generator's seeded xorshift.
fn mutate(input: &[u8], seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut bytes = input.to_vec();
    for _ in 0..1 + next_random(&mut state) % 4 {
        let at = if bytes.is_empty() { 0 } else { (next_random(&mut state) % bytes.len() as u64) as usize };
        match next_random(&mut state) % 4 {
            0 if !bytes.is_empty() => bytes[at] ^= 1 << (next_random(&mut state) % 8),
            1 if !bytes.is_empty() => bytes[at] = next_random(&mut state) as u8,
            2 => bytes.truncate(at),
            _ => {
                let copy = bytes[at..].iter().take(16).copied().collect::<Vec<u8>>();
                bytes.splice(at..at, copy);
            }
        }
    }
    bytes
}

fn replay(name: &str, target: Target) {
    for (path, input) in corpus(name) {
        let run = std::panic::catch_unwind(|| target(&input));
        assert!(run.is_ok(), "{name}: {path} panicked");
        for seed in 0..MUTATIONS_PER_INPUT {
            let mutated = mutate(&input, seed);
            let run = std::panic::catch_unwind(|| target(&mutated));
            assert!(run.is_ok(), "{name}: mutation {seed} of {path} panicked ({} bytes)", mutated.len());
        }
    }
}

#[test]
fn every_fuzz_target_runs_its_corpus_and_mutations_of_it_without_a_panic() {
    for (name, target) in TARGETS {
        replay(name, target);
    }
}
