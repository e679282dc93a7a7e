//! TODO(pipeline helper): l2
