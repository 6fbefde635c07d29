//! Parsers for kernel text files (pure).
