//! The bridge's layers, checked: a module may use modules of its own layer
//! or lower ones, never higher, and no two modules use each other round a
//! circle. `docs/architecture.md` draws the same table.

use std::collections::HashMap;
use std::path::Path;

/// Bottom first. Every module of the crate is in exactly one layer.
const LAYERS: [(&str, &[&str]); 7] = [
  (
    "foundation",
    &[
      "alloc", "runtime", "errors", "crossings", "stats", "headers", "settings", "address", "tls", "server_tls", "logging",
      "metrics",
    ],
  ),
  ("channels", &["commands", "offer", "goaway", "headers_deadline"]),
  ("drivers", &["raw_driver", "client_driver", "limits"]),
  ("handles", &["stream", "flow", "requests"]),
  ("events", &["batch", "events"]),
  ("connection", &["controller", "raw"]),
  ("entry points", &["outbox", "server", "client", "lib", "fuzzing"]),
];

/// Each module of `src/` and the crate modules it names (`crate::x`).
fn imports() -> HashMap<String, Vec<String>> {
  let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
  let mut graph = HashMap::new();
  for entry in std::fs::read_dir(src).unwrap() {
    let path = entry.unwrap().path();
    let module = path.file_stem().unwrap().to_str().unwrap().to_owned();
    let text = std::fs::read_to_string(&path).unwrap();
    let mut used: Vec<String> = text
      .split("crate::")
      .skip(1)
      .map(|rest| rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect::<String>())
      .filter(|name| !name.is_empty() && *name != module)
      .collect();
    used.sort();
    used.dedup();
    graph.insert(module, used);
  }
  graph
}

fn layer_of(module: &str) -> usize {
  LAYERS
    .iter()
    .position(|(_, modules)| modules.contains(&module))
    .unwrap_or_else(|| panic!("module `{module}` is in no layer: add it to LAYERS and docs/architecture.md"))
}

#[test]
fn modules_use_only_their_own_layer_or_lower_ones() {
  for (module, used) in imports() {
    if module == "layers" {
      continue;
    }
    for dep in used {
      assert!(
        layer_of(&dep) <= layer_of(&module),
        "`{module}` ({}) uses `{dep}` ({}), a higher layer",
        LAYERS[layer_of(&module)].0,
        LAYERS[layer_of(&dep)].0
      );
    }
  }
}

#[test]
fn no_modules_use_each_other_in_a_circle() {
  let graph = imports();
  // Depth-first search; a module met again while on the path closes a circle.
  fn visit<'a>(module: &'a str, graph: &'a HashMap<String, Vec<String>>, path: &mut Vec<&'a str>, done: &mut Vec<&'a str>) {
    if done.contains(&module) {
      return;
    }
    if let Some(at) = path.iter().position(|m| *m == module) {
      panic!("import circle: {} -> {module}", path[at..].join(" -> "));
    }
    path.push(module);
    for dep in graph.get(module).into_iter().flatten() {
      visit(dep, graph, path, done);
    }
    path.pop();
    done.push(module);
  }
  let mut done = Vec::new();
  for module in graph.keys() {
    visit(module, &graph, &mut Vec::new(), &mut done);
  }
}
