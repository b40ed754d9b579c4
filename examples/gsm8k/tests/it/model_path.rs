//! Model discovery: the binaries find the default model, and name the fix when it is
//! missing.

use thinktree_gsm8k::model_path::{ModelPathError, ensure_default_model, resolve_model_path};

#[test]
fn a_missing_model_names_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("absent.gguf");
    let err = resolve_model_path(Some(&p)).unwrap_err();
    assert!(matches!(&err, ModelPathError::ModelNotFound { path } if *path == p));
    let msg = err.to_string();
    assert!(
        msg.contains("scripts/fetch-model.sh")
            && msg.contains("THINKTREE_MODEL")
            && msg.contains("--model"),
        "{msg}"
    );
}

#[test]
fn a_file_that_is_not_gguf_is_a_typed_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("not.gguf");
    std::fs::write(&p, b"definitely not a model").expect("write");
    assert!(matches!(
        resolve_model_path(Some(&p)),
        Err(ModelPathError::Gguf(_))
    ));
}

#[test]
fn ensure_default_model_finds_the_present_model_without_fetching() {
    // With the model present this must resolve exactly like `resolve_model_path(None)`
    // and must not run the fetch script.
    let expected = thinktree_gguf::testing::default_model_path();
    let got = ensure_default_model().expect("model present");
    assert_eq!(
        got.canonicalize().expect("found path exists"),
        expected.canonicalize().expect("expected path exists")
    );
}
