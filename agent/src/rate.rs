//! Rate maths (pure).
