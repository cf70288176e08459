//! TODO(policy helper): traffic selectors and SPD.
