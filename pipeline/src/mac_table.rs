//! TODO(pipeline helper): mac_table
