//! TODO(pipeline helper): checksum
