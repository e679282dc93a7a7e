//! TODO(pipeline helper): wire
