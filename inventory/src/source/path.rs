use std::fmt;

/// One step into the tree: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// Where a value stands in the inventory, e.g. `nodes[2].ip`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Path(Vec<Segment>);

impl Path {
    pub fn root() -> Self {
        Self::default()
    }

    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.into()));
        Self(segments)
    }

    pub fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        Self(segments)
    }

    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// The last key, for messages about a field.
    pub fn last_key(&self) -> Option<&str> {
        self.0.iter().rev().find_map(|segment| match segment {
            Segment::Key(key) => Some(key.as_str()),
            Segment::Index(_) => None,
        })
    }
}

/// Builds a path from keys and indices: `path!["nodes", 2, "ip"]`.
#[macro_export]
macro_rules! path {
    ($($segment:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut path = $crate::source::Path::root();
        $( path = $crate::source::PathStep::push(&$segment, path); )*
        path
    }};
}

/// What `path!` accepts as a step.
pub trait PathStep {
    fn push(&self, path: Path) -> Path;
}

impl PathStep for &str {
    fn push(&self, path: Path) -> Path {
        path.key(*self)
    }
}

impl PathStep for String {
    fn push(&self, path: Path) -> Path {
        path.key(self.clone())
    }
}

impl PathStep for usize {
    fn push(&self, path: Path) -> Path {
        path.index(*self)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if position == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}
