//! LDAP directory (being written).
