//! Secret values: proof of possession, SRP passwords, derived keys.
//!
//! Each secret is a newtype that zeroizes on drop, prints `<redacted>` under `Debug`, has no `Serialize`, and is
//! read only through `expose_secret()`, so every place that touches the raw value can be found with grep.

use core::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

macro_rules! secret_bytes {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Zeroize, ZeroizeOnDrop, Eq)]
        pub struct $name(Vec<u8>);

        /// Constant-time in the bytes (a length difference shows), so comparing never leaks how much matched.
        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                subtle::ConstantTimeEq::ct_eq(self.0.as_slice(), other.0.as_slice()).into()
            }
        }

        impl $name {
            /// Wraps the raw bytes; the caller's copy should be dropped (or zeroized) afterwards.
            pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
                Self(bytes.into())
            }

            /// The raw secret. Only security and storage code should call this.
            pub fn expose_secret(&self) -> &[u8] {
                &self.0
            }

            /// Whether the secret is the empty byte string.
            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self::new(s.as_bytes())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self::new(s.into_bytes())
            }
        }
    };
}

secret_bytes!(
    /// Security 1 proof of possession: the device's shared secret that the client must know. ESP hashes its
    /// bytes with SHA-256; an empty PoP disables the hash mixing.
    ProofOfPossession
);

secret_bytes!(
    /// Security 2 password (the SRP `P`). Only clients and credential generation hold it; a device stores the
    /// salt and verifier instead.
    Password
);
