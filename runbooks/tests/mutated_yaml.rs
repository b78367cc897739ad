//! Property test: the parser gets mutated runbooks (the examples with bytes deleted,
//! inserted, lines duplicated, swapped or re-indented, YAML's special characters
//! sprinkled in) and never panics: it answers with a runbook or with positioned issues.
//!
//! Cases: `PROPTEST_CASES` (scripts/test.sh bounds it; the default here is 256).

use drillbook_runbooks::Runbook;
use proptest::prelude::*;

const SEEDS: [&str; 2] =
    [include_str!("../examples/quickstart.yaml"), include_str!("../examples/postgres-pgvector.yaml")];

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, String),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    Indent(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let junk = prop_oneof![
        Just(":".to_string()),
        Just("- ".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("<<: *a\n".to_string()),
        Just("!!binary ".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just("\t".to_string()),
        Just("\n".to_string()),
        Just("# ".to_string()),
        Just("${env:".to_string()),
        Just("between 1 and".to_string()),
        Just("99999999999999999999".to_string()),
        Just("é\u{0}".to_string()),
        "[a-z_]{1,8}",
    ];
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (any::<usize>(), junk).prop_map(|(a, s)| Mutation::Insert(a, s)),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any::<usize>(), 0usize..6).prop_map(|(a, n)| Mutation::Indent(a, n)),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    match m {
        Mutation::Delete(at, n) => {
            let at = at % chars.len().max(1);
            chars[..at].iter().chain(chars[(at + n).min(chars.len())..].iter()).collect()
        }
        Mutation::Insert(at, s) => {
            let at = at % (chars.len() + 1);
            chars[..at].iter().collect::<String>() + s + &chars[at..].iter().collect::<String>()
        }
        Mutation::DuplicateLine(i) => {
            let i = i % lines.len();
            lines.insert(i, lines[i].clone());
            lines.join("\n")
        }
        Mutation::SwapLines(a, b) => {
            let (a, b) = (a % lines.len(), b % lines.len());
            lines.swap(a, b);
            lines.join("\n")
        }
        Mutation::Indent(i, n) => {
            let i = i % lines.len();
            lines[i] = format!("{}{}", " ".repeat(*n), lines[i].trim_start());
            lines.join("\n")
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_runbooks_never_panic(seed in 0usize..SEEDS.len(), mutations in prop::collection::vec(mutation(), 1..6)) {
        let text = mutations.iter().fold(SEEDS[seed].to_string(), |t, m| apply(&t, m));
        if let Err(issues) = Runbook::parse("mutated.yaml", &text) {
            // Every issue can be shown, with its position.
            let shown = issues.to_string();
            prop_assert!(shown.contains("mutated.yaml"), "{}", shown);
        }
    }
}
