//! Field-level differences between two JSON values: what a divergence report shows.
//!
//! Paths read like Rust field access (`broker_2.log[1].leader_epoch`); objects are compared
//! key by key, arrays element by element (a length difference is reported once, after the
//! differing elements of the common prefix), anything else by equality.

use serde_json::Value;

/// One differing field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    pub path: String,
    pub expected: String,
    pub actual: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: expected {}, actual {}",
            self.path, self.expected, self.actual
        )
    }
}

/// Every difference between `expected` and `actual`, under the name `root`.
pub fn diff(root: &str, expected: &Value, actual: &Value) -> Vec<Difference> {
    let mut out = Vec::new();
    walk(root.to_owned(), expected, actual, &mut out);
    out
}

fn walk(path: String, expected: &Value, actual: &Value, out: &mut Vec<Difference>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (key, ev) in e {
                let child = format!("{path}.{key}");
                match a.get(key) {
                    Some(av) => walk(child, ev, av, out),
                    None => out.push(Difference {
                        path: child,
                        expected: ev.to_string(),
                        actual: "(absent)".into(),
                    }),
                }
            }
            for (key, av) in a {
                if !e.contains_key(key) {
                    out.push(Difference {
                        path: format!("{path}.{key}"),
                        expected: "(absent)".into(),
                        actual: av.to_string(),
                    });
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                walk(format!("{path}[{i}]"), ev, av, out);
            }
            if e.len() != a.len() {
                out.push(Difference {
                    path: format!("{path}.len()"),
                    expected: format!("{} ({})", e.len(), expected),
                    actual: format!("{} ({})", a.len(), actual),
                });
            }
        }
        (e, a) if e == a => {}
        (e, a) => out.push(Difference {
            path,
            expected: e.to_string(),
            actual: a.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Goal: nested differences are named by path; equal values give none.
    #[test]
    fn names_nested_fields() {
        let e = json!({"view": {"leader": 1, "isr": [1, 2]}, "hw": 0});
        let a = json!({"view": {"leader": 2, "isr": [1]}, "hw": 0});
        let d = diff("broker_1", &e, &a);
        assert_eq!(d[0].path, "broker_1.view.isr.len()");
        assert_eq!(d[1].path, "broker_1.view.leader");
        assert_eq!(
            d[1].to_string(),
            "broker_1.view.leader: expected 1, actual 2"
        );
        assert!(diff("x", &e, &e).is_empty());
    }
}
