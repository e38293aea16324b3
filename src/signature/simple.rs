//! Simple signing ("atomic container signature"): the payload format and its OpenPGP
//! signing and verification with sequoia-openpgp. (Stub: being written.)
