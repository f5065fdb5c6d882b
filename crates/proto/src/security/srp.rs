//! SRP-6a exactly as ESP-IDF protocomm "security 2" speaks it.
//!
//! ESP fixes several choices that RFC 5054 leaves open or makes differently, and each one breaks
//! interoperability if guessed wrong: SHA-512 throughout; `g` padded to 384 bytes both in `k` and
//! in the `H(g)` of the `M1` prefix; `K = H(S)` over the *minimal* encoding of `S` (a leading zero
//! byte of `S` changes `K`); `A` sent padded but `B` sent minimal; and `M1`/`M2` hashing the salt,
//! `A` and `B` exactly as they travelled. So every byte string that enters a hash here is the wire
//! form, never a re-encoding.
//!
//! Performance: the device runs one handshake per provisioning session, possibly on a small board,
//! so its two fixed bases get precomputed tables. `g` uses a process-wide fixed-window table whose
//! lookups scan every entry (the exponent `b` is secret); the verifier `v` uses a per-server table
//! of `v^(2^(5i))` evaluated with Yao's method, which is variable-time but only in the public
//! scrambler `u`. The remaining `(A·v^u)^b` has a fresh base every session and stays a plain
//! constant-time windowed exponentiation.

use std::fmt;
use std::sync::LazyLock;

use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use crypto_bigint::{BoxedUint, Choice, CtAssign, CtLt, MontyForm, MontyMultiplier, Odd};
use sha2::{Digest, Sha512};
use zeroize::{Zeroize, Zeroizing};

/// Length of the group modulus in bytes; also the padded length of `A` on the wire and the
/// maximum length accepted for any public key.
pub const MODULUS_BYTES: usize = 384;

/// Length in bytes of the session key `K` and of the proofs `M1` and `M2` (one SHA-512 output).
pub const HASH_BYTES: usize = 64;

/// Length in bytes of the secret ephemerals `a` and `b` as ESP draws them.
pub const EPHEMERAL_BYTES: usize = 32;

const MODULUS_BITS: u32 = 3072;
const EPHEMERAL_BITS: u32 = 256;
const HASH_BITS: u32 = 512;

/// `a + u·x < 2^256 + 2^1024`, so 1025 bits always hold it. The exponent is processed to exactly
/// this many bits whatever its value, so its real length never shows in the timing.
const CLIENT_EXPONENT_BITS: u32 = 1025;
/// Storage for the client exponent, rounded up to whole 64-bit limbs.
const CLIENT_EXPONENT_PRECISION: u32 = 1088;

/// RFC 5054 3072-bit group modulus `N` in hex (identical to the RFC 3526 group 15 prime). Public so that tests
/// of hostile clients (a key `A = N`, which is 0 mod N) need no copy.
pub const MODULUS_HEX: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD",
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F",
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510",
    "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200C",
    "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
);

/// `I2B(N)`: the top byte is 0xFF, so the fixed-length encoding is already the minimal one.
const MODULUS_BE: [u8; MODULUS_BYTES] = decode_hex(MODULUS_HEX);

const GENERATOR: u8 = 5;

/// Zero bytes used to left-pad values to the modulus length inside hashes without allocating.
const ZEROS: [u8; MODULUS_BYTES] = [0; MODULUS_BYTES];

/// Window of the constant-time table for `g`. Measured: windows 4, 5 and 6 give the same
/// exponentiation time within noise (fewer multiplications are paid back by longer constant-time
/// scans), and 4 needs the least memory (360 KiB against 620 KiB and 1 MiB) and build time.
const CT_WINDOW: usize = 4;
const CT_ENTRIES_PER_ROW: usize = (1 << CT_WINDOW) - 1;

/// Window of Yao's method for `v^u`: cost is about `512/w + 2^w` multiplications, minimal at 5.
const YAO_WINDOW: usize = 5;

/// Errors from checks that ESP's SRP requires (or that keep us from hashing malformed input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SrpError {
    /// An empty salt would make `x` depend on the password alone.
    #[error("salt is empty")]
    EmptySalt,
    /// No `g^x mod N` is zero or at least `N`; a zero verifier would even make `S = 0` for
    /// every client, whatever password it used.
    #[error("verifier is zero or not below the group modulus")]
    VerifierOutOfRange,
    /// `A` or `B` is longer than the modulus, so it cannot be padded into the scrambler hash.
    #[error("public key is longer than the 384-byte modulus")]
    PublicKeyTooLong,
    /// `A ≡ 0` (device side) or `B ≡ 0` (client side) would force the shared secret to a value
    /// the peer knows without the password.
    #[error("public key is zero modulo the group modulus")]
    ZeroPublicKey,
    /// `u = 0` removes the verifier from the shared secret.
    #[error("scrambling parameter u is zero")]
    ZeroScramble,
}

type Multiplier<'a> = <BoxedMontyForm as MontyForm>::Multiplier<'a>;

/// Group constants that every operation needs; cheap to build (no tables).
struct Group {
    params: BoxedMontyParams,
    one: BoxedMontyForm,
    g: BoxedMontyForm,
    /// `k` as an element, for `k·v` and `k·g^x`.
    k: BoxedMontyForm,
    /// `k` as hashed, kept for the golden-vector test.
    #[cfg_attr(not(test), allow(dead_code))]
    k_hash: [u8; HASH_BYTES],
    /// `H(N) XOR H(PAD(g))`, the first input of `M1`.
    proof_prefix: [u8; HASH_BYTES],
}

static GROUP: LazyLock<Group> = LazyLock::new(Group::new);

/// Built on first use rather than in [`Group`] so that code paths needing only hashes (proofs,
/// `x`) never pay for it.
static G_TABLE: LazyLock<CtFixedBase> = LazyLock::new(|| CtFixedBase::new(&GROUP.g, EPHEMERAL_BITS));

impl Group {
    fn new() -> Self {
        let modulus =
            BoxedUint::from_be_slice(&MODULUS_BE, MODULUS_BITS).expect("the modulus constant is exactly 384 bytes");
        let modulus = Odd::new(modulus).expect("the group modulus is an odd prime");
        // N is public, so the faster variable-time setup leaks nothing.
        let params = BoxedMontyParams::new_vartime(modulus);
        let one = BoxedMontyForm::one(&params);
        let g = element(&[GENERATOR], &params).expect("one byte fits the modulus precision");

        let mut padded_g = [0u8; MODULUS_BYTES];
        if let Some(last) = padded_g.last_mut() {
            *last = GENERATOR;
        }
        let k_hash = sha512(&[&MODULUS_BE, &padded_g]);
        let k = element(&k_hash, &params).expect("a 64-byte hash fits the modulus precision");

        let h_n = sha512(&[&MODULUS_BE]);
        let h_g = sha512(&[&padded_g]);
        let mut proof_prefix = [0u8; HASH_BYTES];
        for ((out, n), g) in proof_prefix.iter_mut().zip(h_n).zip(h_g) {
            *out = n ^ g;
        }

        Self { params, one, g, k, k_hash, proof_prefix }
    }
}

/// Builds the process-wide table for `g` now, so the first handshake does not pay for it
/// (360 KiB and about as long as two device handshakes, once per process).
pub fn precompute() {
    LazyLock::force(&G_TABLE);
}

/// Device side of the handshake for one configured `(salt, verifier)`.
///
/// Built once and reused for every session, because it holds the per-verifier table that makes
/// `v^u` cheap. It holds password-equivalent data (an offline dictionary attack needs only the
/// verifier), so it is wiped on drop and redacted in `Debug`.
pub struct SrpServer {
    salt: Vec<u8>,
    /// `k·v`, the fixed part of `B`.
    kv: BoxedMontyForm,
    v_powers: VartimeFixedBase,
}

impl SrpServer {
    /// Takes the verifier as stored (`I2B(g^x mod N)`); leading zero bytes are tolerated as long
    /// as the whole fits in 384 bytes.
    pub fn new(salt: &[u8], verifier: &[u8]) -> Result<Self, SrpError> {
        if salt.is_empty() {
            return Err(SrpError::EmptySalt);
        }
        let group = &*GROUP;
        let v =
            Zeroizing::new(BoxedUint::from_be_slice(verifier, MODULUS_BITS).map_err(|_| SrpError::VerifierOutOfRange)?);
        // Constant-time so that loading the configuration does not time the verifier's top limbs.
        let in_range = v.ct_lt(group.params.modulus().as_ref()).and(v.is_nonzero());
        if !in_range.to_bool() {
            return Err(SrpError::VerifierOutOfRange);
        }
        let v = Zeroizing::new(BoxedMontyForm::new((*v).clone(), &group.params));
        let kv = group.k.mul(&v);
        let v_powers = VartimeFixedBase::new(&v, HASH_BITS);
        Ok(Self { salt: salt.to_vec(), kv, v_powers })
    }

    /// The salt to send to the client in the first response.
    pub fn salt(&self) -> &[u8] {
        &self.salt
    }

    /// `B = k·v + g^b mod N` in its minimal encoding, which is what ESP puts on the wire (so it
    /// is sometimes shorter than 384 bytes).
    pub fn public_ephemeral(&self, b: &[u8; EPHEMERAL_BYTES]) -> Vec<u8> {
        let g_b = Zeroizing::new(G_TABLE.pow(b));
        let big_b = self.kv.add(&g_b);
        i2b(&big_b.retrieve())
    }

    /// Derives `K = H(I2B(S))` from the client's `A` (exactly as received) and our `B` (exactly
    /// as sent).
    pub fn session_key(
        &self,
        a_pub: &[u8],
        b_pub: &[u8],
        b: &[u8; EPHEMERAL_BYTES],
    ) -> Result<Zeroizing<[u8; HASH_BYTES]>, SrpError> {
        let s = self.premaster_secret(a_pub, b_pub, b)?;
        Ok(hash_premaster(&s))
    }

    /// `S = (A·v^u)^b mod N`, kept separate from the hash so tests can check `S` itself.
    fn premaster_secret(
        &self,
        a_pub: &[u8],
        b_pub: &[u8],
        b: &[u8; EPHEMERAL_BYTES],
    ) -> Result<Zeroizing<BoxedMontyForm>, SrpError> {
        if b_pub.len() > MODULUS_BYTES {
            return Err(SrpError::PublicKeyTooLong);
        }
        let group = &*GROUP;
        let a = element(a_pub, &group.params).ok_or(SrpError::PublicKeyTooLong)?;
        // Montgomery conversion reduces fully, so this also catches A = N.
        if a.is_zero().to_bool() {
            return Err(SrpError::ZeroPublicKey);
        }
        let u = scrambler(a_pub, b_pub)?;
        let v_u = Zeroizing::new(self.v_powers.pow_vartime(&u));
        let base = Zeroizing::new(a.mul(&v_u));
        let b = Zeroizing::new(BoxedUint::from_be_slice(b, EPHEMERAL_BITS).expect("32 bytes fit 256 bits"));
        // `pow` walks every bit of the 256-bit precision, never just the significant ones.
        Ok(Zeroizing::new(base.pow(&b)))
    }
}

impl fmt::Debug for SrpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrpServer")
            .field("salt_len", &self.salt.len())
            .field("verifier", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl Drop for SrpServer {
    fn drop(&mut self) {
        self.kv.zeroize();
        self.v_powers.zeroize();
    }
}

/// `A = g^a mod N`, padded to 384 bytes because that is how ESP's client sends it.
pub fn client_public_ephemeral(a: &[u8; EPHEMERAL_BYTES]) -> [u8; MODULUS_BYTES] {
    let g_a = G_TABLE.pow(a);
    let bytes = g_a.retrieve().to_be_bytes();
    let mut out = [0u8; MODULUS_BYTES];
    // The value is below N, so its 48-limb encoding is exactly 384 bytes.
    for (dst, src) in out.iter_mut().rev().zip(bytes.iter().rev()) {
        *dst = *src;
    }
    out
}

/// `x = H(salt ‖ H(I ‖ ":" ‖ P))`, the password-derived private key.
pub fn client_x(username: &[u8], password: &[u8], salt: &[u8]) -> Zeroizing<[u8; HASH_BYTES]> {
    let inner = Zeroizing::new(sha512(&[username, b":", password]));
    Zeroizing::new(sha512(&[salt, inner.as_slice()]))
}

/// `I2B(g^x mod N)`, the value a device stores instead of the password.
pub fn compute_verifier(username: &[u8], password: &[u8], salt: &[u8]) -> Vec<u8> {
    let x = client_x(username, password, salt);
    let v = Zeroizing::new(g_pow_x(&x).retrieve());
    i2b(&v)
}

/// Client side: `K = H(I2B(S))` with `S = (B − k·g^x)^(a + u·x) mod N`.
///
/// `a_pub` is our `A` as sent, `b_pub` the device's `B` as received; both enter `u` padded.
pub fn client_session_key(
    a: &[u8; EPHEMERAL_BYTES],
    a_pub: &[u8],
    b_pub: &[u8],
    x: &[u8; HASH_BYTES],
) -> Result<Zeroizing<[u8; HASH_BYTES]>, SrpError> {
    let s = client_premaster_secret(a, a_pub, b_pub, x)?;
    Ok(hash_premaster(&s))
}

fn client_premaster_secret(
    a: &[u8; EPHEMERAL_BYTES],
    a_pub: &[u8],
    b_pub: &[u8],
    x: &[u8; HASH_BYTES],
) -> Result<Zeroizing<BoxedMontyForm>, SrpError> {
    if a_pub.len() > MODULUS_BYTES {
        return Err(SrpError::PublicKeyTooLong);
    }
    let group = &*GROUP;
    let big_b = element(b_pub, &group.params).ok_or(SrpError::PublicKeyTooLong)?;
    if big_b.is_zero().to_bool() {
        return Err(SrpError::ZeroPublicKey);
    }
    let u = scrambler(a_pub, b_pub)?;

    let g_x = Zeroizing::new(g_pow_x(x));
    let k_g_x = Zeroizing::new(group.k.mul(&g_x));
    let base = Zeroizing::new(big_b.sub(&k_g_x));

    // The exponent is used exactly (never reduced mod N): it is far below N - 1 anyway.
    let u = BoxedUint::from_be_slice(&u, CLIENT_EXPONENT_PRECISION).expect("64 bytes fit 1088 bits");
    let x = Zeroizing::new(BoxedUint::from_be_slice(x, CLIENT_EXPONENT_PRECISION).expect("64 bytes fit 1088 bits"));
    let a = Zeroizing::new(BoxedUint::from_be_slice(a, CLIENT_EXPONENT_PRECISION).expect("32 bytes fit 1088 bits"));
    // u·x < 2^1024 and a < 2^256, so neither operation wraps at 1088 bits.
    let ux = Zeroizing::new(u.wrapping_mul(&*x));
    let exponent = Zeroizing::new(ux.wrapping_add(&*a));
    Ok(Zeroizing::new(base.pow_bounded_exp(&exponent, CLIENT_EXPONENT_BITS)))
}

/// `M1 = H((H(N) XOR H(PAD(g))) ‖ H(I) ‖ salt ‖ A ‖ B ‖ K)`, with salt, `A` and `B` exactly as
/// they travelled on the wire.
pub fn client_proof(
    username: &[u8],
    salt: &[u8],
    a_pub: &[u8],
    b_pub: &[u8],
    k: &[u8; HASH_BYTES],
) -> [u8; HASH_BYTES] {
    let h_user = sha512(&[username]);
    sha512(&[&GROUP.proof_prefix, &h_user, salt, a_pub, b_pub, k])
}

/// `M2 = H(A ‖ M1 ‖ K)`, with `A` as it travelled on the wire.
pub fn server_proof(a_pub: &[u8], m1: &[u8; HASH_BYTES], k: &[u8; HASH_BYTES]) -> [u8; HASH_BYTES] {
    sha512(&[a_pub, m1, k])
}

/// Compares a received proof with the expected one without revealing, through timing, how many
/// leading bytes matched. A wrong length is simply a mismatch.
pub fn proofs_match(expected: &[u8; HASH_BYTES], received: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(expected.as_slice(), received).into()
}

/// `u = H(PAD(A) ‖ PAD(B))`. Padding here, not on the wire, is what lets a peer send `A` or `B`
/// minimal and still agree on `u`.
fn scrambler(a_pub: &[u8], b_pub: &[u8]) -> Result<[u8; HASH_BYTES], SrpError> {
    if a_pub.len() > MODULUS_BYTES || b_pub.len() > MODULUS_BYTES {
        return Err(SrpError::PublicKeyTooLong);
    }
    let mut hasher = Sha512::new();
    for part in [a_pub, b_pub] {
        hasher.update(ZEROS.get(part.len()..).unwrap_or_default());
        hasher.update(part);
    }
    let u: [u8; HASH_BYTES] = hasher.finalize().into();
    check_scrambler(&u)?;
    Ok(u)
}

fn check_scrambler(u: &[u8; HASH_BYTES]) -> Result<(), SrpError> {
    if u.iter().all(|&byte| byte == 0) {
        return Err(SrpError::ZeroScramble);
    }
    Ok(())
}

/// `g^x` for the 512-bit `x`, through the 256-bit table in two halves: 384 multiplications
/// instead of the 654 of a plain `pow`, without doubling the table.
fn g_pow_x(x: &[u8; HASH_BYTES]) -> BoxedMontyForm {
    G_TABLE.pow(x)
}

/// `K = H(I2B(S))`: ESP hashes `S` minimal, so a leading zero byte changes the key. Trimming
/// is variable-time in the number of leading zero bytes; the protocol itself makes that length
/// part of the computation, and it is 0 for all but 1/256 of sessions.
fn hash_premaster(s: &BoxedMontyForm) -> Zeroizing<[u8; HASH_BYTES]> {
    let s = Zeroizing::new(s.retrieve());
    let bytes = Zeroizing::new(s.to_be_bytes());
    Zeroizing::new(sha512(&[trim_leading_zeros(&bytes)]))
}

/// Decodes a big-endian public value of up to 384 bytes into a group element (reduced mod N).
/// `None` when it is too long.
fn element(bytes: &[u8], params: &BoxedMontyParams) -> Option<BoxedMontyForm> {
    let value = BoxedUint::from_be_slice(bytes, MODULUS_BITS).ok()?;
    Some(BoxedMontyForm::new(value, params))
}

/// `I2B`: minimal big-endian, with zero encoded as a single zero byte.
fn i2b(value: &BoxedUint) -> Vec<u8> {
    trim_leading_zeros(&value.to_be_bytes()).to_vec()
}

fn trim_leading_zeros(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&byte| byte != 0) {
        Some(first) => bytes.get(first..).unwrap_or_default(),
        None => &[0],
    }
}

fn sha512(parts: &[&[u8]]) -> [u8; HASH_BYTES] {
    let mut hasher = Sha512::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// Reads `width` bits of a big-endian integer starting at bit `first` (bit 0 = least
/// significant). Bits past the end read as zero. Which bytes are touched depends only on the
/// public positions, never on the value, so this is safe for secret exponents.
fn window(exponent_be: &[u8], first: usize, width: usize) -> u32 {
    let len = exponent_be.len();
    let mut digit = 0u32;
    for offset in 0..width {
        let bit = first + offset;
        let byte = len.checked_sub(1 + bit / 8).and_then(|index| exponent_be.get(index)).copied().unwrap_or(0);
        digit |= u32::from((byte >> (bit % 8)) & 1) << offset;
    }
    digit
}

/// Fixed-base table for constant-time exponentiation by secret exponents: row `i` holds
/// `base^(d·2^(4i))` for `d = 1..=15`, so `base^e` is one multiplication per 4-bit digit and no
/// squarings at all. Each lookup reads the whole row and keeps the wanted entry with a masked
/// copy, so neither the memory access pattern nor the instruction stream depends on the digit.
struct CtFixedBase {
    /// Rows of `CT_ENTRIES_PER_ROW` entries; digit 0 selects `one` and is not stored.
    entries: Vec<BoxedMontyForm>,
    exponent_bits: u32,
}

impl CtFixedBase {
    fn new(base: &BoxedMontyForm, exponent_bits: u32) -> Self {
        let rows = (exponent_bits as usize).div_ceil(CT_WINDOW);
        let mut entries = Vec::with_capacity(rows * CT_ENTRIES_PER_ROW);
        let mut mm = Multiplier::from(base.params());
        let mut row_base = base.clone();
        for _ in 0..rows {
            let mut power = row_base.clone();
            for _ in 0..CT_ENTRIES_PER_ROW {
                entries.push(power.clone());
                MontyMultiplier::mul_assign(&mut mm, &mut power, &row_base);
            }
            // After 15 entries `power` = row_base^16, the next row's base.
            row_base = power;
        }
        Self { entries, exponent_bits }
    }

    /// `base^e` for a big-endian exponent of any length. Exponents wider than the table are cut
    /// into table-wide chunks and combined Horner-style, `exponent_bits` squarings per extra
    /// chunk. Only the (public) exponent length decides how much work is done.
    fn pow(&self, exponent_be: &[u8]) -> BoxedMontyForm {
        let chunk_bytes = self.exponent_bits as usize / 8;
        let mut mm = Multiplier::from(&GROUP.params);
        let mut acc: Option<Zeroizing<BoxedMontyForm>> = None;
        // `rchunks` aligns the chunks to the least significant end; reversed, the most
        // significant (possibly short) chunk comes first.
        for chunk in exponent_be.rchunks(chunk_bytes.max(1)).rev() {
            let part = Zeroizing::new(self.pow_chunk(chunk));
            match acc.as_mut() {
                Some(acc) => {
                    for _ in 0..self.exponent_bits {
                        MontyMultiplier::square_assign(&mut mm, acc);
                    }
                    MontyMultiplier::mul_assign(&mut mm, acc, &part);
                }
                None => acc = Some(part),
            }
        }
        acc.map_or_else(|| GROUP.one.clone(), |acc| (*acc).clone())
    }

    /// `base^e` for an exponent of at most `exponent_bits` bits.
    fn pow_chunk(&self, exponent_be: &[u8]) -> BoxedMontyForm {
        debug_assert!(exponent_be.len() * 8 <= self.exponent_bits as usize);
        let group = &*GROUP;
        let one = &group.one;
        let mut mm = Multiplier::from(&group.params);
        let mut acc = Zeroizing::new(one.clone());
        let mut selected = Zeroizing::new(one.clone());
        for (row_index, row) in self.entries.chunks_exact(CT_ENTRIES_PER_ROW).enumerate() {
            let digit = window(exponent_be, row_index * CT_WINDOW, CT_WINDOW);
            selected.as_montgomery_mut().ct_assign(one.as_montgomery(), Choice::TRUE);
            for (candidate, entry) in (1u32..).zip(row) {
                selected.as_montgomery_mut().ct_assign(entry.as_montgomery(), Choice::from_u32_eq(candidate, digit));
            }
            // Multiplying by one for a zero digit is deliberate: skipping it would leak the digit.
            MontyMultiplier::mul_assign(&mut mm, &mut acc, &selected);
        }
        (*acc).clone()
    }

    fn memory_bytes(&self) -> usize {
        self.entries.len() * MODULUS_BYTES
    }
}

/// Table of `base^(2^(5i))` for Yao's fixed-base method. Only for public exponents: which
/// entries get multiplied, and how often, follows the exponent's digits.
struct VartimeFixedBase {
    powers: Vec<BoxedMontyForm>,
}

impl VartimeFixedBase {
    fn new(base: &BoxedMontyForm, exponent_bits: u32) -> Self {
        let rows = (exponent_bits as usize).div_ceil(YAO_WINDOW);
        let mut powers = Vec::with_capacity(rows);
        let mut mm = Multiplier::from(base.params());
        let mut power = base.clone();
        for row in 0..rows {
            if row > 0 {
                for _ in 0..YAO_WINDOW {
                    MontyMultiplier::square_assign(&mut mm, &mut power);
                }
            }
            powers.push(power.clone());
        }
        power.zeroize();
        Self { powers }
    }

    /// `base^e = Π_d (Π_{i: e_i = d} T_i)^d`, evaluated from the largest digit down so that
    /// each `d` costs one extra multiplication instead of an exponentiation.
    fn pow_vartime(&self, exponent_be: &[u8]) -> BoxedMontyForm {
        let group = &*GROUP;
        let mut mm = Multiplier::from(&group.params);
        let digits: Vec<u32> =
            (0..self.powers.len()).map(|i| window(exponent_be, i * YAO_WINDOW, YAO_WINDOW)).collect();
        let mut partial: Option<BoxedMontyForm> = None;
        let mut result: Option<BoxedMontyForm> = None;
        for d in (1..(1u32 << YAO_WINDOW)).rev() {
            for (power, _) in self.powers.iter().zip(&digits).filter(|(_, digit)| **digit == d) {
                if let Some(partial) = partial.as_mut() {
                    MontyMultiplier::mul_assign(&mut mm, partial, power);
                } else {
                    partial = Some(power.clone());
                }
            }
            if let Some(partial) = partial.as_ref() {
                if let Some(result) = result.as_mut() {
                    MontyMultiplier::mul_assign(&mut mm, result, partial);
                } else {
                    result = Some(partial.clone());
                }
            }
        }
        if let Some(partial) = partial.as_mut() {
            partial.zeroize();
        }
        result.unwrap_or_else(|| group.one.clone())
    }

    fn memory_bytes(&self) -> usize {
        self.powers.len() * MODULUS_BYTES
    }
}

impl Zeroize for VartimeFixedBase {
    fn zeroize(&mut self) {
        for power in &mut self.powers {
            power.zeroize();
        }
    }
}

#[allow(clippy::indexing_slicing, reason = "const evaluation: a bad index is a compile error")]
const fn decode_hex<const LEN: usize>(hex: &str) -> [u8; LEN] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => panic!("invalid hex digit"),
        }
    }
    let hex = hex.as_bytes();
    assert!(hex.len() == 2 * LEN, "hex constant has the wrong length");
    let mut out = [0u8; LEN];
    let mut i = 0;
    while i < LEN {
        out[i] = (nibble(hex[2 * i]) << 4) | nibble(hex[2 * i + 1]);
        i += 1;
    }
    out
}

/// Naive and internal operations exposed only so the benchmark can compare them.
#[doc(hidden)]
pub mod bench_support {
    use super::{
        BoxedMontyForm, BoxedUint, CtFixedBase, EPHEMERAL_BITS, G_TABLE, GROUP, HASH_BYTES, MODULUS_BITS, SrpServer,
    };

    /// Decodes up to 384 big-endian bytes at the modulus precision the raw functions expect.
    pub fn group_int(bytes: &[u8]) -> BoxedUint {
        BoxedUint::from_be_slice(bytes, MODULUS_BITS).expect("at most 384 bytes")
    }

    /// `g^b mod N` with crypto-bigint's plain constant-time `pow`.
    pub fn raw_g_pow(b: &[u8; 32]) -> BoxedUint {
        let b = BoxedUint::from_be_slice(b, EPHEMERAL_BITS).expect("32 bytes fit 256 bits");
        GROUP.g.pow(&b).retrieve()
    }

    /// `(A·v^u)^b mod N` with plain `pow` for both exponentiations. `a` and `v` must be at the
    /// 3072-bit precision of [`group_int`]; `u` may have any precision.
    pub fn raw_a_vu_b(a: &BoxedUint, v: &BoxedUint, u: &BoxedUint, b: &[u8; 32]) -> BoxedUint {
        assert_eq!(a.bits_precision(), MODULUS_BITS, "A must come from group_int");
        assert_eq!(v.bits_precision(), MODULUS_BITS, "v must come from group_int");
        let params = &GROUP.params;
        let a = BoxedMontyForm::new(a.clone(), params);
        let v = BoxedMontyForm::new(v.clone(), params);
        let b = BoxedUint::from_be_slice(b, EPHEMERAL_BITS).expect("32 bytes fit 256 bits");
        a.mul(&v.pow(u)).pow(&b).retrieve()
    }

    /// `g^b mod N` through the precomputed constant-time table.
    pub fn fast_g_pow(b: &[u8; 32]) -> BoxedUint {
        G_TABLE.pow(b).retrieve()
    }

    /// `v^u mod N` through the server's Yao table.
    pub fn fast_v_pow_u(server: &SrpServer, u: &[u8; HASH_BYTES]) -> BoxedUint {
        server.v_powers.pow_vartime(u).retrieve()
    }

    /// Builds a fresh `g` table (the process-wide one is built only once) and returns its size
    /// in bytes.
    pub fn build_g_table() -> usize {
        CtFixedBase::new(&GROUP.g, EPHEMERAL_BITS).memory_bytes()
    }

    /// Size in bytes of a server's verifier table.
    pub fn server_table_bytes(server: &SrpServer) -> usize {
        server.v_powers.memory_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::bench_support::{fast_g_pow, fast_v_pow_u, group_int, raw_a_vu_b, raw_g_pow};
    use super::*;
    use serde_json::Value;

    /// Directory of the golden vectors, `tests/vectors` in the repository.
    const VECTOR_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors");

    fn load(file: &str) -> Value {
        let path = format!("{VECTOR_DIR}/{file}");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("golden vector file {path} must exist: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
    }

    fn field(v: &Value, name: &str) -> Vec<u8> {
        let text = v.get(name).and_then(Value::as_str).unwrap_or_else(|| panic!("vector field {name} missing"));
        hex::decode(text).unwrap_or_else(|e| panic!("vector field {name} is not hex: {e}"))
    }

    fn text(v: &Value, name: &str) -> Vec<u8> {
        v.get(name).and_then(Value::as_str).unwrap_or_else(|| panic!("vector field {name} missing")).as_bytes().to_vec()
    }

    fn number(v: &Value, name: &str) -> usize {
        let n = v.get(name).and_then(Value::as_u64).unwrap_or_else(|| panic!("vector field {name} missing"));
        usize::try_from(n).expect("small length")
    }

    fn array<const L: usize>(v: &Value, name: &str) -> [u8; L] {
        field(v, name).try_into().unwrap_or_else(|_| panic!("vector field {name} must be {L} bytes"))
    }

    fn sec2() -> Value {
        load("esp-security-vectors.json").get("sec2").cloned().expect("sec2 vectors present")
    }

    /// The sec2 vector plus both edge cases, each merged over sec2's shared inputs.
    fn all_cases() -> Vec<(String, Value)> {
        let base = sec2();
        let edge = load("esp-security-edge-vectors.json");
        let mut cases = vec![("sec2".to_owned(), base.clone())];
        for name in ["short_B", "short_S"] {
            let mut case = base.clone();
            let overrides =
                edge.get(name).and_then(Value::as_object).unwrap_or_else(|| panic!("edge case {name} missing"));
            let target = case.as_object_mut().expect("sec2 is an object");
            for (key, value) in overrides {
                target.insert(key.clone(), value.clone());
            }
            cases.push((name.to_owned(), case));
        }
        cases
    }

    fn server_for(v: &Value) -> SrpServer {
        SrpServer::new(&field(v, "salt"), &field(v, "verifier")).expect("golden verifier is valid")
    }

    fn s_bytes(s: &BoxedMontyForm) -> Vec<u8> {
        i2b(&s.retrieve())
    }

    /// Deterministic test randomness: SHA-512 of a label and a counter.
    struct TestRng(u64);

    impl TestRng {
        fn bytes<const L: usize>(&mut self) -> [u8; L] {
            let mut out = [0u8; L];
            for chunk in out.chunks_mut(HASH_BYTES) {
                self.0 += 1;
                let block = sha512(&[b"wifiprov srp test rng", &self.0.to_be_bytes()]);
                chunk.copy_from_slice(block.get(..chunk.len()).expect("chunk fits a block"));
            }
            out
        }
    }

    #[test]
    fn verifier_from_password() {
        let v = sec2();
        let verifier = compute_verifier(&text(&v, "username"), &text(&v, "password"), &field(&v, "salt"));
        assert_eq!(verifier, field(&v, "verifier"));
    }

    #[test]
    fn multiplier_k() {
        let v = sec2();
        assert_eq!(GROUP.k_hash.as_slice(), field(&v, "k"));
    }

    #[test]
    fn private_key_x() {
        let v = sec2();
        let x = client_x(&text(&v, "username"), &text(&v, "password"), &field(&v, "salt"));
        assert_eq!(x.as_slice(), field(&v, "x"));
    }

    #[test]
    fn client_a() {
        let v = sec2();
        let a_pub = client_public_ephemeral(&array(&v, "a"));
        assert_eq!(a_pub.as_slice(), field(&v, "A"));
    }

    #[test]
    fn server_b_including_short() {
        for (name, v) in all_cases() {
            let big_b = server_for(&v).public_ephemeral(&array(&v, "b"));
            assert_eq!(big_b, field(&v, "B"), "{name}");
            assert_eq!(big_b.len(), number(&v, "B_len"), "{name}");
        }
    }

    #[test]
    fn scrambler_u() {
        let v = sec2();
        let u = scrambler(&field(&v, "A"), &field(&v, "B")).expect("u is not zero");
        assert_eq!(u.as_slice(), field(&v, "u"));
    }

    #[test]
    fn premaster_and_session_key_both_sides() {
        for (name, v) in all_cases() {
            let server = server_for(&v);
            let (a_pub, b_pub) = (field(&v, "A"), field(&v, "B"));
            let (a, b, x) = (array(&v, "a"), array(&v, "b"), array(&v, "x"));

            let s_server = server.premaster_secret(&a_pub, &b_pub, &b).expect("server S");
            let s_client = client_premaster_secret(&a, &a_pub, &b_pub, &x).expect("client S");
            assert_eq!(s_bytes(&s_server), field(&v, "S"), "{name}: server S");
            assert_eq!(s_bytes(&s_client), field(&v, "S"), "{name}: client S");
            if let Some(len) = v.get("S_len") {
                assert_eq!(Some(s_bytes(&s_server).len() as u64), len.as_u64(), "{name}: S_len");
            }

            let k_server = server.session_key(&a_pub, &b_pub, &b).expect("server K");
            let k_client = client_session_key(&a, &a_pub, &b_pub, &x).expect("client K");
            assert_eq!(k_server.as_slice(), field(&v, "K"), "{name}: server K");
            assert_eq!(k_client.as_slice(), field(&v, "K"), "{name}: client K");
        }
    }

    #[test]
    fn short_s_hashes_383_bytes() {
        let case = all_cases().into_iter().find(|(n, _)| n == "short_S").expect("short_S").1;
        let s = field(&case, "S");
        assert_eq!(s.len(), 383);
        assert_eq!(sha512(&[&s]).as_slice(), field(&case, "K"));
    }

    #[test]
    fn proofs() {
        for (name, v) in all_cases() {
            let k: [u8; 64] = array(&v, "K");
            let (a_pub, b_pub) = (field(&v, "A"), field(&v, "B"));
            let m1 = client_proof(&text(&v, "username"), &field(&v, "salt"), &a_pub, &b_pub, &k);
            assert_eq!(m1.as_slice(), field(&v, "M1"), "{name}: M1");
            let m2 = server_proof(&a_pub, &m1, &k);
            assert_eq!(m2.as_slice(), field(&v, "M2"), "{name}: M2");
            assert!(proofs_match(&m1, &field(&v, "M1")));
            assert!(!proofs_match(&m1, &field(&v, "M2")));
            assert!(!proofs_match(&m1, m1.get(..63).expect("63 bytes")));
        }
    }

    #[test]
    fn device_rejects_zero_a() {
        let v = sec2();
        let server = server_for(&v);
        let (b_pub, b) = (field(&v, "B"), array(&v, "b"));
        for a_pub in [vec![], vec![0], vec![0; MODULUS_BYTES], MODULUS_BE.to_vec()] {
            assert_eq!(server.session_key(&a_pub, &b_pub, &b), Err(SrpError::ZeroPublicKey));
        }
    }

    #[test]
    fn device_rejects_long_a() {
        let v = sec2();
        let server = server_for(&v);
        let (b_pub, b) = (field(&v, "B"), array(&v, "b"));
        // 2N needs 385 bytes; so does A with a leading zero byte added.
        let mut two_n = vec![1u8];
        let mut carry = 0u16;
        let mut doubled: Vec<u8> = MODULUS_BE
            .iter()
            .rev()
            .map(|&byte| {
                let wide = u16::from(byte) * 2 + carry;
                carry = wide >> 8;
                wide as u8
            })
            .collect();
        doubled.reverse();
        two_n.extend(doubled);
        let mut padded_a = vec![0u8];
        padded_a.extend(field(&v, "A"));
        for a_pub in [two_n, padded_a] {
            assert_eq!(a_pub.len(), MODULUS_BYTES + 1);
            assert_eq!(server.session_key(&a_pub, &b_pub, &b), Err(SrpError::PublicKeyTooLong));
        }
    }

    #[test]
    fn device_accepts_a_at_least_n_but_nonzero() {
        // 2^3072 - 1 exceeds N but is not ≡ 0, so it is reduced, not refused.
        let v = sec2();
        let all_ones = [0xffu8; MODULUS_BYTES];
        let key = server_for(&v).session_key(&all_ones, &field(&v, "B"), &array(&v, "b"));
        assert!(key.is_ok());
    }

    /// Adds a small number to a 384-byte big-endian value (test inputs never overflow).
    fn plus(mut value: [u8; MODULUS_BYTES], mut addend: u16) -> [u8; MODULUS_BYTES] {
        for byte in value.iter_mut().rev() {
            let sum = u16::from(*byte) + addend;
            *byte = (sum & 0xff) as u8;
            addend = sum >> 8;
        }
        assert_eq!(addend, 0, "overflow");
        value
    }

    #[test]
    fn public_values_at_least_n_are_reduced() {
        let params = &GROUP.params;
        for small in [1u16, 5, 300] {
            let reduced = element(&small.to_be_bytes(), params).expect("short");
            let unreduced = element(&plus(MODULUS_BE, small), params).expect("384 bytes");
            assert_eq!(reduced, unreduced);
        }
    }

    #[test]
    fn client_rejects_zero_or_long_b() {
        let v = sec2();
        let (a, a_pub, x) = (array(&v, "a"), field(&v, "A"), array(&v, "x"));
        for b_pub in [vec![], vec![0; MODULUS_BYTES], MODULUS_BE.to_vec()] {
            assert_eq!(client_session_key(&a, &a_pub, &b_pub, &x), Err(SrpError::ZeroPublicKey));
        }
        let mut long_b = vec![0u8];
        long_b.extend(field(&v, "B"));
        assert_eq!(client_session_key(&a, &a_pub, &long_b, &x), Err(SrpError::PublicKeyTooLong));
    }

    #[test]
    fn zero_scrambler_rejected() {
        assert_eq!(check_scrambler(&[0; HASH_BYTES]), Err(SrpError::ZeroScramble));
        let mut one = [0; HASH_BYTES];
        if let Some(last) = one.last_mut() {
            *last = 1;
        }
        assert_eq!(check_scrambler(&one), Ok(()));
    }

    #[test]
    fn server_rejects_bad_configuration() {
        let v = sec2();
        let salt = field(&v, "salt");
        let all_ones = [0xffu8; MODULUS_BYTES];
        let too_long = vec![1u8; MODULUS_BYTES + 1];
        let bad: [&[u8]; 6] = [&[], &[0], &[0; MODULUS_BYTES], &MODULUS_BE, &all_ones, &too_long];
        for verifier in bad {
            assert_eq!(SrpServer::new(&salt, verifier).err(), Some(SrpError::VerifierOutOfRange));
        }
        assert_eq!(SrpServer::new(&[], &field(&v, "verifier")).err(), Some(SrpError::EmptySalt));
    }

    #[test]
    fn debug_redacts_verifier() {
        let server = server_for(&sec2());
        let shown = format!("{server:?}");
        assert!(shown.contains("redacted"), "{shown}");
        assert!(!shown.to_lowercase().contains("7c7c85"), "{shown}");
    }

    #[test]
    fn server_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SrpServer>();
    }

    #[test]
    fn tables_match_plain_pow() {
        let server = server_for(&sec2());
        let v = group_int(&field(&sec2(), "verifier"));
        let mut rng = TestRng(1000);
        let mut exponents: Vec<[u8; 32]> = vec![[0; 32], [0xff; 32]];
        exponents.extend((0..10).map(|_| rng.bytes::<32>()));
        for b in &exponents {
            assert_eq!(fast_g_pow(b), raw_g_pow(b));
        }
        let mut wide: Vec<Vec<u8>> = vec![vec![], vec![7], vec![0xff; 64], vec![0; 64], vec![0xab; 40]];
        wide.extend((0..5).map(|_| rng.bytes::<64>().to_vec()));
        for x in &wide {
            let plain = GROUP.g.pow(&BoxedUint::from_be_slice(x, 512).expect("at most 64 bytes"));
            assert_eq!(G_TABLE.pow(x), plain, "exponent of {} bytes", x.len());
        }
        let mut scramblers: Vec<[u8; 64]> = vec![[0; 64], [0xff; 64]];
        scramblers.extend((0..10).map(|_| rng.bytes::<64>()));
        let one = group_int(&[1]);
        let mut b_one = [0u8; 32];
        if let Some(last) = b_one.last_mut() {
            *last = 1;
        }
        for u in &scramblers {
            let u_int = BoxedUint::from_be_slice(u, 512).expect("64 bytes");
            assert_eq!(fast_v_pow_u(&server, u), raw_a_vu_b(&one, &v, &u_int, &b_one));
        }
    }

    #[test]
    fn device_accepts_unpadded_a() {
        // A client that strips leading zeros must still agree on K, since u pads A back.
        let mut rng = TestRng(5000);
        let (a, a_pub) = loop {
            let a = rng.bytes::<32>();
            let a_pub = client_public_ephemeral(&a);
            if a_pub.first() == Some(&0) {
                break (a, a_pub);
            }
        };
        let v = sec2();
        let server = server_for(&v);
        let b = rng.bytes::<32>();
        let b_pub = server.public_ephemeral(&b);
        let x = array(&v, "x");
        let client = client_session_key(&a, &a_pub, &b_pub, &x).expect("client K");
        let device = server.session_key(trim_leading_zeros(&a_pub), &b_pub, &b).expect("device K");
        assert_eq!(*client, *device);
    }

    #[test]
    fn random_round_trips() {
        let mut rng = TestRng(0);
        for i in 0..60u32 {
            let username = format!("user{i}");
            let password = rng.bytes::<12>();
            let salt = rng.bytes::<16>();
            let verifier = compute_verifier(username.as_bytes(), &password, &salt);
            let server = SrpServer::new(&salt, &verifier).expect("fresh verifier is valid");

            let (a, b) = (rng.bytes::<32>(), rng.bytes::<32>());
            let a_pub = client_public_ephemeral(&a);
            let b_pub = server.public_ephemeral(&b);
            let x = client_x(username.as_bytes(), &password, server.salt());
            let k_client = client_session_key(&a, &a_pub, &b_pub, &x).expect("client K");
            let k_server = server.session_key(&a_pub, &b_pub, &b).expect("server K");
            assert_eq!(*k_client, *k_server, "round trip {i}");

            let m1 = client_proof(username.as_bytes(), &salt, &a_pub, &b_pub, &k_client);
            assert!(proofs_match(&client_proof(username.as_bytes(), &salt, &a_pub, &b_pub, &k_server), &m1));

            // A wrong password must not produce the same key.
            let wrong_x = client_x(username.as_bytes(), b"wrong", &salt);
            let k_wrong = client_session_key(&a, &a_pub, &b_pub, &wrong_x).expect("client K");
            assert_ne!(*k_wrong, *k_server, "round trip {i}");
        }
    }
}
