//! TODO(awslc helper): CryptoProvider on aws-lc-rs.
