//! The one place documents become YAML, so all three share the emitter's
//! settings.

use serde::Serialize;

use crate::error::RenderError;

/// serde-saphyr folds strings longer than 80 characters into `>` block
/// scalars at spaces. That is still the same string, but an SSH key split
/// over lines is hard to read and to grep for, so only strings with
/// newlines get block style (`|`), and long lines stay on one line.
const NEVER_FOLD: usize = 1 << 20;

pub(crate) fn emit<T: Serialize>(value: &T, document: &'static str) -> Result<String, RenderError> {
    let options = serde_saphyr::ser_options! { folded_wrap_chars: NEVER_FOLD };
    serde_saphyr::to_string_with_options(value, options).map_err(|error| RenderError::Yaml {
        document,
        message: error.to_string(),
    })
}
