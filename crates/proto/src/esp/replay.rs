//! TODO(replay helper): RFC 6479 anti-replay window with RFC 4303 Appendix A ESN inference.
