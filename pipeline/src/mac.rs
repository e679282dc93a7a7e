//! TODO(pipeline helper): mac
