//! Server-side storages implemented in Rust.
