//! Unit tests of the controller's shared context helpers.

use std::collections::HashSet;

use crate::controller::{RequestMemory, truncate_note};

#[test]
fn memory_counts_and_forgets() {
    let m = RequestMemory::default();
    assert_eq!(m.failed("u"), 1);
    assert_eq!(m.failed("u"), 2);
    m.remember_issued("u", "id");
    assert_eq!(m.issued_for("u").as_deref(), Some("id"));
    m.forget("u");
    assert_eq!(m.failed("u"), 1);
    assert!(m.issued_for("u").is_none());
}

#[test]
fn memory_of_deleted_requests_is_dropped() {
    let m = RequestMemory::default();
    m.remember_issued("gone", "id");
    m.set_checked_candidates("gone", HashSet::from(["x".to_owned()]));
    m.failed("live");
    m.retain(&HashSet::from(["live".to_owned()]));
    assert_eq!(m.len(), 1);
    assert!(m.issued_for("gone").is_none() && m.checked_candidates("gone").is_empty());
}

#[test]
fn notes_are_cut_on_char_boundaries() {
    let long = "é".repeat(800);
    let cut = truncate_note(long);
    assert!(cut.len() <= 1004 && cut.ends_with('…'));
}
