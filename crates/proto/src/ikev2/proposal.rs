//! SA proposal negotiation (RFC 7296 §2.7, §3.3): pure functions, and errors that say *why*.
//!
//! - [`ProposalSpec`] is a configured proposal: per transform type, the acceptable algorithms
//!   in preference order. The daemon's config crate builds it from swanctl keywords, and its
//!   [`Display`](fmt::Display) writes them back (`aes256gcm16-prfsha384-ecp384`), so logs read
//!   like `swanctl.conf`.
//! - [`select`] is the responder: it picks one offered proposal and one transform of each type
//!   from it, or returns [`NoProposalChosen`] with both sides' lists and the closest miss.
//! - [`check_response`] is the initiator: it checks that the responder chose exactly one
//!   transform per type, all from the proposal we sent under that number.
//!
//! # Matching rules (as strongSwan's `proposal.c`, `select_algos`/`select_algo`)
//!
//! - A proposal matches when every transform type the protocol needs has a common transform.
//!   IKE needs ENCR, PRF, INTEG (unless the cipher is an AEAD) and KE; ESP needs ENCR, INTEG
//!   (unless AEAD) and ESN, and KE only for PFS.
//! - Two transforms are equal when their IDs and Key Length attributes are (a missing attribute
//!   counts as 0): AES-128 never matches AES-256, and `aes` without a length matches neither.
//! - Within a matching pair of proposals, the preferred side's order picks each transform. With
//!   [`Preference::Configured`] (strongSwan's default, `prefer_configured_proposals = yes`) our
//!   proposals are tried in our order against each offered one, and our algorithm order wins;
//!   with [`Preference::Offered`] the peer's order wins. Either way the offered proposal's
//!   number is echoed.
//! - ESP's KE is optional: with no KE configured, an offer that includes `none` is accepted
//!   without PFS; a configured list that includes `none` accepts an offer without KE. A chosen
//!   `none` is not echoed (strongSwan drops transforms with ID 0 other than ESN).
//! - ESN: a configured ESP proposal without ESN means `noesn` (strongSwan's `check_proposal`
//!   adds `NO_EXT_SEQ_NUMBERS`). An offer without an ESN transform is also read as `noesn`,
//!   and then no ESN is echoed; strongSwan is stricter there and rejects such an offer, as
//!   ESN is mandatory in ESP proposals (RFC 7296 §3.3.3).
//! - Transform IDs we do not know are skipped, never an error. A transform with an attribute
//!   other than Key Length is skipped too. A proposal with a transform *type* we do not know is
//!   unacceptable (RFC 7296 §3.3.6), but the next proposal is still tried. Additional key
//!   exchanges (RFC 9370) are not supported: an offer that allows `none` for them is accepted
//!   without them.
//! - AH is not supported: AH proposals never match.

use core::fmt;
use std::collections::BTreeMap;

use crate::crypto::{EspSuite, encr_is_aead};
use crate::wire::ikev2::{
    Attribute, AttributeType, Proposal, ProtocolId, Transform, TransformType,
};
use crate::wire::{EncrId, IntegId, KeId, PrfId};

/// A configured proposal: for each transform type, the acceptable algorithms in preference
/// order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProposalSpec {
    /// IKE or ESP.
    pub protocol: ProtocolId,
    /// Encryption transforms with their key size in bits (`0`: no Key Length attribute, for
    /// fixed-size ciphers such as 3DES and ChaCha20-Poly1305).
    pub encr: Vec<(EncrId, u16)>,
    /// Pseudorandom functions (IKE only; ignored for ESP). Empty for IKE means the PRFs that
    /// go with the integrity transforms (`aes128-sha256-modp2048` implies `prfsha256`), as
    /// strongSwan's `check_proposal` derives them.
    pub prf: Vec<PrfId>,
    /// Integrity transforms; empty with AEAD ciphers. [`IntegId::NONE`] entries are ignored.
    pub integ: Vec<IntegId>,
    /// Key exchange methods. For ESP this is PFS: empty or [`KeId::NONE`] means none. For IKE
    /// [`KeId::NONE`] entries are ignored.
    pub ke: Vec<KeId>,
    /// Extended sequence numbers (ESP only): `true` for `esn`, `false` for `noesn`; empty
    /// means `noesn`.
    pub esn: Vec<bool>,
}

/// Whose order decides, when several proposals or transforms would do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Preference {
    /// Our configured order wins (strongSwan's default, `prefer_configured_proposals = yes`).
    #[default]
    Configured,
    /// The peer's offered order wins.
    Offered,
}

/// The algorithms of an IKE SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IkeSuite {
    /// Encryption transform.
    pub encr: EncrId,
    /// Encryption key size in bits; `0` for fixed-size ciphers.
    pub encr_key_bits: u16,
    /// Pseudorandom function.
    pub prf: PrfId,
    /// Integrity transform; [`IntegId::NONE`] with an AEAD cipher.
    pub integ: IntegId,
    /// Key exchange method.
    pub ke: KeId,
}

/// The algorithms of an ESP Child SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChildSuite {
    /// Encryption and integrity.
    pub esp: EspSuite,
    /// Whether extended sequence numbers are used.
    pub esn: bool,
    /// The PFS key exchange method, if any.
    pub ke: Option<KeId>,
}

/// The chosen algorithms, typed by protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Suite {
    /// An ESP Child SA.
    Esp(ChildSuite),
    /// An IKE SA.
    Ike(IkeSuite),
}

/// A negotiated proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selected {
    /// The proposal number to echo (the offered proposal's).
    pub number: u8,
    /// The protocol.
    pub protocol: ProtocolId,
    /// The SPI the peer sent in the chosen proposal.
    pub peer_spi: Vec<u8>,
    /// Exactly one transform per negotiated type, ready for the response SA payload.
    pub transforms: Vec<Transform>,
    /// The chosen algorithms.
    pub suite: Suite,
}

impl Selected {
    /// The proposal for the response SA payload, carrying our `spi`.
    pub fn to_wire(&self, spi: Vec<u8>) -> Proposal {
        Proposal {
            number: self.number,
            protocol: self.protocol,
            spi,
            transforms: self.transforms.clone(),
        }
    }
}

/// Nothing the peer offered is acceptable: both lists, and the closest miss.
///
/// Its `Display` is one line a person can act on, with both lists in swanctl keyword syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoProposalChosen {
    /// What the peer offered, as received.
    pub offered: Vec<Proposal>,
    /// What we accept.
    pub configured: Vec<ProposalSpec>,
    /// The pair of proposals that came closest to matching, if any pair had the same protocol.
    pub closest: Option<Miss>,
}

/// Why one offered proposal did not match one configured proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Miss {
    /// The offered proposal's number.
    pub offered_number: u8,
    /// The configured proposal's position (1-based, as in the log line).
    pub configured_number: usize,
    /// The transform types that did have a common transform before the failure.
    pub matched: Vec<TransformType>,
    /// What failed.
    pub reason: MissReason,
}

/// What failed in a [`Miss`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MissReason {
    /// No common transform of this type.
    NoCommon(TransformType),
    /// The proposals are for different protocols.
    Protocol {
        /// The offered protocol.
        offered: ProtocolId,
        /// Ours.
        configured: ProtocolId,
    },
    /// The offered proposal contains a transform type we do not know (RFC 7296 §3.3.6).
    UnknownTransformType(TransformType),
    /// We do not negotiate this protocol.
    UnsupportedProtocol(ProtocolId),
}

/// What is wrong with the responder's chosen proposal.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadResponse {
    /// The chosen proposal number is not one we sent.
    #[error("peer chose proposal #{number}, but we offered {offered} proposal(s)")]
    UnknownNumber {
        /// The number in the response.
        number: u8,
        /// How many proposals we offered.
        offered: usize,
    },
    /// The chosen proposal's protocol is not the one of our proposal with that number.
    #[error("peer chose proposal #{number} for {got}, but we offered it for {expected}")]
    Protocol {
        /// The proposal number.
        number: u8,
        /// Our protocol.
        expected: ProtocolId,
        /// The responder's.
        got: ProtocolId,
    },
    /// More than one transform of one type.
    #[error("peer chose more than one {ty} transform ({first}, {second}), must choose one")]
    Duplicate {
        /// The transform type.
        ty: TransformType,
        /// The first one, as a keyword.
        first: String,
        /// The second one, as a keyword.
        second: String,
    },
    /// A transform we did not offer in that proposal.
    #[error("peer chose {ty} {chosen}, which we did not offer in #{number} ({offered})")]
    NotOffered {
        /// The proposal number.
        number: u8,
        /// The transform type.
        ty: TransformType,
        /// The chosen transform, as a keyword.
        chosen: String,
        /// Our proposal with that number.
        offered: Box<ProposalSpec>,
    },
    /// A transform type the protocol needs is missing.
    #[error("peer chose no {ty} transform in #{number} ({offered})")]
    Missing {
        /// The proposal number.
        number: u8,
        /// The missing type.
        ty: TransformType,
        /// Our proposal with that number.
        offered: Box<ProposalSpec>,
    },
}

/// The responder's choice: the first acceptable pair of an offered and a configured proposal,
/// in the order `prefer` gives, with one transform of each needed type.
pub fn select(
    offered: &[Proposal],
    configured: &[ProposalSpec],
    prefer: Preference,
) -> Result<Selected, NoProposalChosen> {
    let ours: Vec<Lists> = configured.iter().map(Lists::from_spec).collect();
    let theirs: Vec<Lists> = offered.iter().map(Lists::from_wire).collect();
    let mut pairs = Vec::with_capacity(ours.len().saturating_mul(theirs.len()));
    match prefer {
        Preference::Configured => {
            for c in 0..ours.len() {
                pairs.extend((0..theirs.len()).map(|o| (c, o)));
            }
        }
        Preference::Offered => {
            for o in 0..theirs.len() {
                pairs.extend((0..ours.len()).map(|c| (c, o)));
            }
        }
    }
    let mut closest: Option<Miss> = None;
    for (c, o) in pairs {
        let (Some(our), Some(their), Some(wire)) = (ours.get(c), theirs.get(o), offered.get(o))
        else {
            continue;
        };
        match negotiate(our, their, prefer) {
            Ok(chosen) => {
                if let Some(suite) = chosen.suite(our.protocol) {
                    return Ok(Selected {
                        number: wire.number,
                        protocol: wire.protocol,
                        peer_spi: wire.spi.clone(),
                        transforms: chosen.transforms(),
                        suite,
                    });
                }
            }
            Err(failure) => {
                let better = match &closest {
                    None => !matches!(failure.reason, MissReason::Protocol { .. }),
                    Some(best) => failure.matched.len() > best.matched.len(),
                };
                if better {
                    closest = Some(Miss {
                        offered_number: wire.number,
                        configured_number: c.saturating_add(1),
                        matched: failure.matched,
                        reason: failure.reason,
                    });
                }
            }
        }
    }
    Err(NoProposalChosen { offered: offered.to_vec(), configured: configured.to_vec(), closest })
}

/// The initiator's check of the responder's `chosen` proposal against the proposals we sent
/// (numbered from 1 in order, as [`ProposalSpec::to_wire`] numbers them).
///
/// Every transform must be one we offered under that number, at most one per type, and every
/// type the protocol needs must be there. Leniencies, as on the responder side: an ESP answer
/// without ESN means `noesn` (if we offered it), and one without KE means no PFS (if we
/// offered `none`). The SPI is not checked here.
pub fn check_response(
    offered_by_us: &[ProposalSpec],
    chosen: &Proposal,
) -> Result<Selected, BadResponse> {
    let number = chosen.number;
    let spec = usize::from(number)
        .checked_sub(1)
        .and_then(|i| offered_by_us.get(i))
        .ok_or(BadResponse::UnknownNumber { number, offered: offered_by_us.len() })?;
    if spec.protocol != chosen.protocol {
        return Err(BadResponse::Protocol {
            number,
            expected: spec.protocol,
            got: chosen.protocol,
        });
    }
    let ours = Lists::from_spec(spec);
    let mut seen: BTreeMap<TransformType, Alg> = BTreeMap::new();
    for t in &chosen.transforms {
        let alg = Alg::from_wire(t);
        let offered_here = alg.is_some_and(|alg| {
            ours.by_type.get(&t.ty).is_some_and(|list| list.contains(&alg))
                || (t.ty == TransformType::INTEG && alg.id == 0)
        });
        let alg = alg.unwrap_or(Alg { id: t.id, key_bits: t.key_length().unwrap_or(0) });
        if !offered_here {
            return Err(BadResponse::NotOffered {
                number,
                ty: t.ty,
                chosen: keyword(t.ty, alg),
                offered: Box::new(spec.clone()),
            });
        }
        if let Some(first) = seen.insert(t.ty, alg) {
            return Err(BadResponse::Duplicate {
                ty: t.ty,
                first: keyword(t.ty, first),
                second: keyword(t.ty, alg),
            });
        }
    }
    let theirs = Lists::from_wire(chosen);
    let missing = |ty| BadResponse::Missing { number, ty, offered: Box::new(spec.clone()) };
    let picked = negotiate(&ours, &theirs, Preference::Configured).map_err(|f| match f.reason {
        MissReason::NoCommon(ty) => missing(ty),
        // Unreachable after the checks above; report the first type that was not matched.
        _ => missing(TransformType::ENCR),
    })?;
    let suite = picked.suite(spec.protocol).ok_or_else(|| missing(TransformType::ENCR))?;
    Ok(Selected {
        number,
        protocol: chosen.protocol,
        peer_spi: chosen.spi.clone(),
        transforms: picked.transforms(),
        suite,
    })
}

impl ProposalSpec {
    /// The proposal to send, numbered `number` (1 for the first, RFC 7296 §3.3.1), with our
    /// `spi`. ESP proposals always carry ESN (mandatory, RFC 7296 §3.3.3), `noesn` by default.
    pub fn to_wire(&self, number: u8, spi: Vec<u8>) -> Proposal {
        let lists = Lists::from_spec(self);
        let transforms = lists
            .by_type
            .iter()
            .flat_map(|(ty, algs)| algs.iter().map(|alg| alg.transform(*ty)))
            .collect();
        Proposal { number, protocol: self.protocol, spi, transforms }
    }
}

impl fmt::Display for ProposalSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Lists::from_spec(self).fmt(f)
    }
}

impl fmt::Display for NoProposalChosen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no proposal chosen: peer offered [")?;
        for (i, p) in self.offered.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            Lists::from_wire(p).fmt(f)?;
        }
        f.write_str("], we accept [")?;
        for (i, p) in self.configured.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            p.fmt(f)?;
        }
        f.write_str("]")?;
        if let Some(miss) = &self.closest {
            write!(f, "; closest: {miss}")?;
        }
        Ok(())
    }
}

impl std::error::Error for NoProposalChosen {}

impl fmt::Display for Miss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer's #{} vs our #{}: ", self.offered_number, self.configured_number)?;
        match self.reason {
            MissReason::NoCommon(ty) => write!(f, "no common {}", type_name(ty))?,
            MissReason::Protocol { offered, configured } => {
                write!(f, "protocol {offered} vs {configured}")?;
            }
            MissReason::UnknownTransformType(ty) => {
                write!(f, "unknown transform type {}", ty.0)?;
            }
            MissReason::UnsupportedProtocol(p) => write!(f, "protocol {p} is not supported")?,
        }
        if !self.matched.is_empty() {
            f.write_str(" (")?;
            for (i, ty) in self.matched.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                f.write_str(type_name(*ty))?;
            }
            f.write_str(" matched)")?;
        }
        Ok(())
    }
}

/// A transform as compared: ID and Key Length (0 when absent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Alg {
    id: u16,
    key_bits: u16,
}

impl Alg {
    const NONE: Self = Self { id: 0, key_bits: 0 };

    fn new(id: u16) -> Self {
        Self { id, key_bits: 0 }
    }

    /// `None` for a transform with an attribute other than a TV Key Length: we cannot honour
    /// what we do not understand.
    fn from_wire(t: &Transform) -> Option<Self> {
        let understood = t
            .attributes
            .iter()
            .all(|a| matches!(a, Attribute::Tv { ty: AttributeType::KEY_LENGTH, .. }));
        understood.then(|| Self { id: t.id, key_bits: t.key_length().unwrap_or(0) })
    }

    fn transform(self, ty: TransformType) -> Transform {
        let attributes = if self.key_bits == 0 {
            Vec::new()
        } else {
            vec![Attribute::Tv { ty: AttributeType::KEY_LENGTH, value: self.key_bits }]
        };
        Transform { ty, id: self.id, attributes }
    }
}

/// One side's proposal, normalised: per transform type, the transforms in order.
#[derive(Debug)]
struct Lists {
    protocol: ProtocolId,
    by_type: BTreeMap<TransformType, Vec<Alg>>,
}

impl Lists {
    fn from_spec(spec: &ProposalSpec) -> Self {
        let mut by_type = BTreeMap::new();
        let ike = spec.protocol == ProtocolId::IKE;
        let encr: Vec<Alg> =
            spec.encr.iter().map(|&(id, bits)| Alg { id: id.0, key_bits: bits }).collect();
        by_type.insert(TransformType::ENCR, encr);
        if ike {
            let prf: Vec<Alg> = if spec.prf.is_empty() {
                let mut implied: Vec<Alg> = Vec::new();
                for prf in spec.integ.iter().filter_map(|i| prf_for_integ(*i)) {
                    if !implied.contains(&Alg::new(prf.0)) {
                        implied.push(Alg::new(prf.0));
                    }
                }
                implied
            } else {
                spec.prf.iter().map(|p| Alg::new(p.0)).collect()
            };
            by_type.insert(TransformType::PRF, prf);
        }
        let integ = spec.integ.iter().filter(|i| **i != IntegId::NONE).map(|i| Alg::new(i.0));
        by_type.insert(TransformType::INTEG, integ.collect());
        let ke = spec.ke.iter().filter(|k| !ike || **k != KeId::NONE).map(|k| Alg::new(k.0));
        by_type.insert(TransformType::KE, ke.collect());
        if !ike {
            let esn: &[bool] = if spec.esn.is_empty() { &[false] } else { spec.esn.as_slice() };
            let esn = esn.iter().map(|&e| Alg::new(u16::from(e)));
            by_type.insert(TransformType::ESN, esn.collect());
        }
        by_type.retain(|_, algs| !algs.is_empty());
        Self { protocol: spec.protocol, by_type }
    }

    fn from_wire(p: &Proposal) -> Self {
        let mut by_type: BTreeMap<TransformType, Vec<Alg>> = BTreeMap::new();
        for t in &p.transforms {
            // Keep the type even if the transform is skipped, so an unknown type is noticed.
            let list = by_type.entry(t.ty).or_default();
            if let Some(alg) = Alg::from_wire(t) {
                list.push(alg);
            }
        }
        Self { protocol: p.protocol, by_type }
    }

    fn get(&self, ty: TransformType) -> &[Alg] {
        self.by_type.get(&ty).map_or(&[], Vec::as_slice)
    }
}

impl fmt::Display for Lists {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keyword order as swanctl writes it: encryption, integrity, PRF, KE, ESN, then the rest.
        const ORDER: [TransformType; 5] = [
            TransformType::ENCR,
            TransformType::INTEG,
            TransformType::PRF,
            TransformType::KE,
            TransformType::ESN,
        ];
        let rest = self.by_type.keys().copied().filter(|ty| !ORDER.contains(ty));
        let mut first = true;
        for ty in ORDER.into_iter().chain(rest) {
            let algs = self.get(ty);
            // `noesn` alone is the default and is left out, as swanctl users write it.
            if ty == TransformType::ESN && algs == [Alg::NONE] {
                continue;
            }
            for &alg in algs {
                if ty == TransformType::INTEG && alg.id == 0 {
                    continue;
                }
                if !first {
                    f.write_str("-")?;
                }
                first = false;
                f.write_str(&keyword(ty, alg))?;
            }
        }
        if first {
            f.write_str("(empty)")?;
        }
        Ok(())
    }
}

/// The chosen transform of each negotiated type, in type order.
struct Chosen {
    protocol: ProtocolId,
    /// What goes into the response; a negotiated "none" (ESP KE, RFC 9370 ADDKE) is left out.
    picks: Vec<(TransformType, Alg)>,
    esn: bool,
    ke: Option<KeId>,
}

impl Chosen {
    fn get(&self, ty: TransformType) -> Option<Alg> {
        self.picks.iter().find(|(t, _)| *t == ty).map(|(_, alg)| *alg)
    }

    fn transforms(&self) -> Vec<Transform> {
        self.picks.iter().map(|(ty, alg)| alg.transform(*ty)).collect()
    }

    fn suite(&self, protocol: ProtocolId) -> Option<Suite> {
        let encr = self.get(TransformType::ENCR)?;
        let integ = IntegId(self.get(TransformType::INTEG).map_or(0, |a| a.id));
        match protocol {
            ProtocolId::IKE => Some(Suite::Ike(IkeSuite {
                encr: EncrId(encr.id),
                encr_key_bits: encr.key_bits,
                prf: PrfId(self.get(TransformType::PRF)?.id),
                integ,
                ke: self.ke?,
            })),
            ProtocolId::ESP => Some(Suite::Esp(ChildSuite {
                esp: EspSuite { encr: EncrId(encr.id), encr_key_bits: encr.key_bits, integ },
                esn: self.esn,
                ke: self.ke,
            })),
            _ => None,
        }
        .filter(|_| self.protocol == protocol)
    }
}

/// The PRF that goes with an integrity transform, for IKE proposals that name none.
fn prf_for_integ(integ: IntegId) -> Option<PrfId> {
    Some(match integ {
        IntegId::AUTH_HMAC_MD5_96 => PrfId::PRF_HMAC_MD5,
        IntegId::AUTH_HMAC_SHA1_96 => PrfId::PRF_HMAC_SHA1,
        IntegId::AUTH_AES_XCBC_96 => PrfId::PRF_AES128_XCBC,
        IntegId::AUTH_AES_CMAC_96 => PrfId::PRF_AES128_CMAC,
        IntegId::AUTH_HMAC_SHA2_256_128 => PrfId::PRF_HMAC_SHA2_256,
        IntegId::AUTH_HMAC_SHA2_384_192 => PrfId::PRF_HMAC_SHA2_384,
        IntegId::AUTH_HMAC_SHA2_512_256 => PrfId::PRF_HMAC_SHA2_512,
        _ => return None,
    })
}

/// Why a pair of proposals did not match, and how far it got.
struct Failure {
    matched: Vec<TransformType>,
    reason: MissReason,
}

/// Whether we know this transform ID (unknown ones are skipped).
fn is_known(ty: TransformType, id: u16) -> bool {
    match ty {
        TransformType::ENCR => EncrId(id).name().is_some(),
        TransformType::PRF => PrfId(id).name().is_some(),
        TransformType::INTEG => IntegId(id).name().is_some(),
        TransformType::ESN => id <= 1,
        _ => KeId(id).name().is_some(),
    }
}

/// The first transform of `ty` in the preferred side's order that the other side has too.
fn pick(ours: &[Alg], theirs: &[Alg], ty: TransformType, prefer: Preference) -> Option<Alg> {
    let (first, second) = match prefer {
        Preference::Configured => (ours, theirs),
        Preference::Offered => (theirs, ours),
    };
    first.iter().copied().find(|alg| is_known(ty, alg.id) && second.contains(alg))
}

/// Matches one configured proposal (`ours`) against one offered (`theirs`).
fn negotiate(ours: &Lists, theirs: &Lists, prefer: Preference) -> Result<Chosen, Failure> {
    let mut matched = Vec::new();
    let fail = |matched: &Vec<TransformType>, reason| Failure { matched: matched.clone(), reason };
    if ours.protocol != theirs.protocol {
        let reason = MissReason::Protocol { offered: theirs.protocol, configured: ours.protocol };
        return Err(fail(&matched, reason));
    }
    let ike = match ours.protocol {
        ProtocolId::IKE => true,
        ProtocolId::ESP => false,
        other => return Err(fail(&matched, MissReason::UnsupportedProtocol(other))),
    };
    if let Some(ty) = theirs.by_type.keys().find(|ty| !(1..=12).contains(&ty.0)) {
        return Err(fail(&matched, MissReason::UnknownTransformType(*ty)));
    }
    let mut chosen = Chosen { protocol: ours.protocol, picks: Vec::new(), esn: false, ke: None };
    let need = |ty: TransformType, chosen: &mut Chosen, matched: &mut Vec<TransformType>| {
        let (o, t) = (ours.get(ty), theirs.get(ty));
        // INTEG "none" only ever accompanies an AEAD, where INTEG is not negotiated.
        let alg = pick(o, t, ty, prefer).filter(|a| ty != TransformType::INTEG || a.id != 0);
        match alg {
            Some(alg) => {
                chosen.picks.push((ty, alg));
                matched.push(ty);
                Ok(alg)
            }
            None => Err(fail(matched, MissReason::NoCommon(ty))),
        }
    };

    let encr = need(TransformType::ENCR, &mut chosen, &mut matched)?;
    if ike {
        need(TransformType::PRF, &mut chosen, &mut matched)?;
    }
    if !encr_is_aead(EncrId(encr.id)) {
        need(TransformType::INTEG, &mut chosen, &mut matched)?;
    }
    if ike {
        let ke = need(TransformType::KE, &mut chosen, &mut matched)?;
        chosen.ke = Some(KeId(ke.id));
    } else {
        // PFS is optional: "none" on one side accepts the other side having no KE at all.
        let (o, t) = (ours.get(TransformType::KE), theirs.get(TransformType::KE));
        let ke = match (o.is_empty(), t.is_empty()) {
            (true, true) => Some(Alg::NONE),
            (true, false) => t.contains(&Alg::NONE).then_some(Alg::NONE),
            (false, true) => o.contains(&Alg::NONE).then_some(Alg::NONE),
            (false, false) => pick(o, t, TransformType::KE, prefer),
        };
        match ke {
            Some(Alg::NONE) => {}
            Some(alg) => {
                chosen.picks.push((TransformType::KE, alg));
                chosen.ke = Some(KeId(alg.id));
            }
            None => return Err(fail(&matched, MissReason::NoCommon(TransformType::KE))),
        }
        matched.push(TransformType::KE);
        // An offer without ESN means "noesn"; then there is nothing to echo either.
        let t = theirs.get(TransformType::ESN);
        let (t, echo): (&[Alg], bool) =
            if t.is_empty() { (&[Alg::NONE], false) } else { (t, true) };
        match pick(ours.get(TransformType::ESN), t, TransformType::ESN, prefer) {
            Some(alg) => {
                if echo {
                    chosen.picks.push((TransformType::ESN, alg));
                }
                chosen.esn = alg.id == 1;
                matched.push(TransformType::ESN);
            }
            None => return Err(fail(&matched, MissReason::NoCommon(TransformType::ESN))),
        }
    }
    // Additional key exchanges (RFC 9370) are not supported: acceptable only where the peer
    // allows "none" for them.
    for ty in (6..=12).map(TransformType) {
        let t = theirs.get(ty);
        if !t.is_empty() && !t.contains(&Alg::NONE) {
            return Err(fail(&matched, MissReason::NoCommon(ty)));
        }
    }
    Ok(chosen)
}

/// A person's name for a transform type, for log lines.
fn type_name(ty: TransformType) -> &'static str {
    match ty {
        TransformType::ENCR => "ENCR",
        TransformType::PRF => "PRF",
        TransformType::INTEG => "INTEG",
        TransformType::KE => "KE method",
        TransformType::ESN => "ESN setting",
        _ => ty.name().unwrap_or("unknown transform type"),
    }
}

/// The swanctl keyword for a transform (strongSwan `proposal_keywords_static.txt`); unknown
/// IDs print as `<type><id>`, such as `encr1234`.
fn keyword(ty: TransformType, alg: Alg) -> String {
    let bits = alg.key_bits;
    let named = |s: &str| if bits == 0 { s.to_owned() } else { format!("{s}_{bits}") };
    let aes = |suffix: &str| {
        if bits == 0 { format!("aes{suffix}") } else { format!("aes{bits}{suffix}") }
    };
    match ty {
        TransformType::ENCR => match EncrId(alg.id) {
            EncrId::ENCR_3DES => named("3des"),
            EncrId::ENCR_NULL => named("null"),
            EncrId::ENCR_AES_CBC => aes(""),
            EncrId::ENCR_AES_CTR => aes("ctr"),
            EncrId::ENCR_AES_CCM_8 => aes("ccm8"),
            EncrId::ENCR_AES_CCM_12 => aes("ccm12"),
            EncrId::ENCR_AES_CCM_16 => aes("ccm16"),
            EncrId::ENCR_AES_GCM_8 => aes("gcm8"),
            EncrId::ENCR_AES_GCM_12 => aes("gcm12"),
            EncrId::ENCR_AES_GCM_16 => aes("gcm16"),
            EncrId::ENCR_NULL_AUTH_AES_GMAC => aes("gmac"),
            EncrId::ENCR_CHACHA20_POLY1305 => named("chacha20poly1305"),
            _ => named(&format!("encr{}", alg.id)),
        },
        TransformType::PRF => named(match PrfId(alg.id) {
            PrfId::PRF_HMAC_MD5 => "prfmd5",
            PrfId::PRF_HMAC_SHA1 => "prfsha1",
            PrfId::PRF_AES128_XCBC => "prfaesxcbc",
            PrfId::PRF_HMAC_SHA2_256 => "prfsha256",
            PrfId::PRF_HMAC_SHA2_384 => "prfsha384",
            PrfId::PRF_HMAC_SHA2_512 => "prfsha512",
            PrfId::PRF_AES128_CMAC => "prfaescmac",
            _ => return named(&format!("prf{}", alg.id)),
        }),
        TransformType::INTEG => named(match IntegId(alg.id) {
            IntegId::NONE => "nointeg",
            IntegId::AUTH_HMAC_MD5_96 => "md5",
            IntegId::AUTH_HMAC_SHA1_96 => "sha1",
            IntegId::AUTH_AES_XCBC_96 => "aesxcbc",
            IntegId::AUTH_AES_CMAC_96 => "aescmac",
            IntegId::AUTH_HMAC_SHA2_256_128 => "sha256",
            IntegId::AUTH_HMAC_SHA2_384_192 => "sha384",
            IntegId::AUTH_HMAC_SHA2_512_256 => "sha512",
            _ => return named(&format!("integ{}", alg.id)),
        }),
        TransformType::ESN => named(match alg.id {
            0 => "noesn",
            1 => "esn",
            _ => return named(&format!("esn{}", alg.id)),
        }),
        TransformType(n @ 4..=12) => {
            let ke =
                ke_keyword(KeId(alg.id)).map_or_else(|| format!("ke{}", alg.id), str::to_owned);
            // Additional key exchanges are written `ke1_mlkem768` (RFC 9370 types 6 to 12).
            let ke = if n == 4 { ke } else { format!("ke{}_{ke}", n - 5) };
            named(&ke)
        }
        TransformType(n) => named(&format!("type{n}.{}", alg.id)),
    }
}

fn ke_keyword(ke: KeId) -> Option<&'static str> {
    Some(match ke {
        KeId::NONE => "none",
        KeId::MODP_1024 => "modp1024",
        KeId::MODP_1536 => "modp1536",
        KeId::MODP_2048 => "modp2048",
        KeId::MODP_3072 => "modp3072",
        KeId::MODP_4096 => "modp4096",
        KeId::MODP_6144 => "modp6144",
        KeId::MODP_8192 => "modp8192",
        KeId::ECP_256 => "ecp256",
        KeId::ECP_384 => "ecp384",
        KeId::ECP_521 => "ecp521",
        KeId::CURVE25519 => "curve25519",
        KeId::CURVE448 => "curve448",
        KeId::ML_KEM_512 => "mlkem512",
        KeId::ML_KEM_768 => "mlkem768",
        KeId::ML_KEM_1024 => "mlkem1024",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Parses swanctl keywords by searching for the ID whose [`keyword`] is the token, so the
    /// tables below read like `swanctl.conf` (the daemon's real parser lives in its config crate).
    fn spec(protocol: ProtocolId, keywords: &str) -> ProposalSpec {
        let mut p = ProposalSpec {
            protocol,
            encr: Vec::new(),
            prf: Vec::new(),
            integ: Vec::new(),
            ke: Vec::new(),
            esn: Vec::new(),
        };
        'token: for tok in keywords.split('-') {
            for id in 0..64u16 {
                for bits in [0, 128, 192, 256] {
                    if EncrId(id).name().is_some()
                        && keyword(TransformType::ENCR, Alg { id, key_bits: bits }) == tok
                    {
                        p.encr.push((EncrId(id), bits));
                        continue 'token;
                    }
                }
                let alg = Alg::new(id);
                if PrfId(id).name().is_some() && keyword(TransformType::PRF, alg) == tok {
                    p.prf.push(PrfId(id));
                    continue 'token;
                }
                if IntegId(id).name().is_some() && keyword(TransformType::INTEG, alg) == tok {
                    p.integ.push(IntegId(id));
                    continue 'token;
                }
                if KeId(id).name().is_some() && keyword(TransformType::KE, alg) == tok {
                    p.ke.push(KeId(id));
                    continue 'token;
                }
            }
            match tok {
                "esn" => p.esn.push(true),
                "noesn" => p.esn.push(false),
                _ => panic!("unknown keyword {tok}"),
            }
        }
        p
    }

    fn ike(keywords: &str) -> ProposalSpec {
        spec(ProtocolId::IKE, keywords)
    }

    fn esp(keywords: &str) -> ProposalSpec {
        spec(ProtocolId::ESP, keywords)
    }

    /// Offered proposals, numbered from 1.
    fn offer(specs: &[ProposalSpec]) -> Vec<Proposal> {
        (1u8..).zip(specs).map(|(n, s)| s.to_wire(n, vec![n; 4])).collect()
    }

    fn chosen(
        offered: &[ProposalSpec],
        configured: &[ProposalSpec],
        prefer: Preference,
    ) -> Result<(u8, String), Box<Miss>> {
        match select(&offer(offered), configured, prefer) {
            Ok(sel) => {
                let p = Lists::from_wire(&sel.to_wire(Vec::new()));
                Ok((sel.number, p.to_string()))
            }
            Err(e) => Err(Box::new(e.closest.expect("a closest miss"))),
        }
    }

    fn nth(offered: &mut [Proposal], i: usize) -> &mut Proposal {
        offered.get_mut(i).unwrap()
    }

    fn ok(n: u8, s: &str) -> Result<(u8, String), Box<Miss>> {
        Ok((n, s.to_owned()))
    }

    fn no_common(ty: TransformType) -> impl Fn(&Result<(u8, String), Box<Miss>>) -> bool {
        move |r| matches!(r, Err(m) if m.reason == MissReason::NoCommon(ty))
    }

    #[test]
    fn identical_ike_proposals() {
        let p = ike("aes256gcm16-prfsha384-ecp384");
        let sel = select(&offer(std::slice::from_ref(&p)), &[p], Preference::Configured).unwrap();
        assert_eq!(sel.number, 1);
        assert_eq!(sel.peer_spi, vec![1; 4]);
        assert_eq!(
            sel.transforms,
            vec![
                Transform::encr(EncrId::ENCR_AES_GCM_16, Some(256)),
                Transform::prf(PrfId::PRF_HMAC_SHA2_384),
                Transform::ke(KeId::ECP_384),
            ]
        );
        assert_eq!(
            sel.suite,
            Suite::Ike(IkeSuite {
                encr: EncrId::ENCR_AES_GCM_16,
                encr_key_bits: 256,
                prf: PrfId::PRF_HMAC_SHA2_384,
                integ: IntegId::NONE,
                ke: KeId::ECP_384,
            })
        );
    }

    #[test]
    fn selection_table() {
        use Preference::{Configured as C, Offered as O};
        // (offered, configured, preference, expected)
        let table: Vec<(Vec<ProposalSpec>, Vec<ProposalSpec>, Preference, _)> = vec![
            // subset of each list
            (
                vec![ike("aes128-aes256-sha256-sha1-prfsha256-modp2048-ecp256")],
                vec![ike("aes256-sha1-prfsha1-prfsha256-ecp256-ecp384")],
                C,
                ok(1, "aes256-sha1-prfsha256-ecp256"),
            ),
            // transform order: ours with Configured, theirs with Offered
            (
                vec![ike("aes128-aes256-sha256-prfsha256-modp2048")],
                vec![ike("aes256-aes128-sha256-prfsha256-modp2048")],
                C,
                ok(1, "aes256-sha256-prfsha256-modp2048"),
            ),
            (
                vec![ike("aes128-aes256-sha256-prfsha256-modp2048")],
                vec![ike("aes256-aes128-sha256-prfsha256-modp2048")],
                O,
                ok(1, "aes128-sha256-prfsha256-modp2048"),
            ),
            // proposal order: ours with Configured, theirs with Offered; their number echoed
            (
                vec![esp("aes128-sha256"), esp("aes256gcm16")],
                vec![esp("aes256gcm16"), esp("aes128-sha256")],
                C,
                ok(2, "aes256gcm16"),
            ),
            (
                vec![esp("aes128-sha256"), esp("aes256gcm16")],
                vec![esp("aes256gcm16"), esp("aes128-sha256")],
                O,
                ok(1, "aes128-sha256"),
            ),
            // AEAD: no INTEG needed, none echoed even if offered alongside
            (vec![esp("aes128gcm16")], vec![esp("aes128gcm16")], C, ok(1, "aes128gcm16")),
            (
                vec![esp("aes128gcm16-aes128-sha256")],
                vec![esp("aes128gcm16")],
                C,
                ok(1, "aes128gcm16"),
            ),
            // non-AEAD without a common INTEG
            (
                vec![esp("aes128-sha1")],
                vec![esp("aes128-sha256")],
                C,
                Err(Box::new(Miss {
                    offered_number: 1,
                    configured_number: 1,
                    matched: vec![TransformType::ENCR],
                    reason: MissReason::NoCommon(TransformType::INTEG),
                })),
            ),
            // ESN on one side only, or on both
            (
                vec![esp("aes128-sha256-esn-noesn")],
                vec![esp("aes128-sha256")],
                C,
                ok(1, "aes128-sha256"),
            ),
            (
                vec![esp("aes128-sha256-noesn-esn")],
                vec![esp("aes128-sha256-esn-noesn")],
                C,
                ok(1, "aes128-sha256-esn"),
            ),
            (
                vec![esp("aes128-sha256-noesn-esn")],
                vec![esp("aes128-sha256-esn-noesn")],
                O,
                ok(1, "aes128-sha256"),
            ),
            // PFS: "none" on either side accepts no KE; a common group is used
            (
                vec![esp("aes128gcm16-ecp256-none")],
                vec![esp("aes128gcm16")],
                C,
                ok(1, "aes128gcm16"),
            ),
            (
                vec![esp("aes128gcm16")],
                vec![esp("aes128gcm16-ecp256-none")],
                C,
                ok(1, "aes128gcm16"),
            ),
            (
                vec![esp("aes128gcm16-ecp256-none")],
                vec![esp("aes128gcm16-ecp256")],
                C,
                ok(1, "aes128gcm16-ecp256"),
            ),
            // only the second proposal matches
            (
                vec![ike("3des-sha1-prfsha1-modp1024"), ike("aes128-sha256-prfsha256-ecp256")],
                vec![ike("aes256-aes128-sha256-prfsha256-ecp256")],
                C,
                ok(2, "aes128-sha256-prfsha256-ecp256"),
            ),
        ];
        for (i, (offered, configured, prefer, want)) in table.into_iter().enumerate() {
            assert_eq!(chosen(&offered, &configured, prefer), want, "row {i}");
        }
    }

    #[test]
    fn mismatches_name_the_transform_type() {
        use Preference::Configured as C;
        let rows: Vec<(Vec<ProposalSpec>, Vec<ProposalSpec>, TransformType)> = vec![
            // key length must match: AES-128 is not AES-256
            (vec![esp("aes128-sha256")], vec![esp("aes256-sha256")], TransformType::ENCR),
            (vec![esp("aes128gcm16")], vec![esp("aes256gcm16")], TransformType::ENCR),
            // ESN only on one side
            (vec![esp("aes128-sha256-esn")], vec![esp("aes128-sha256")], TransformType::ESN),
            (vec![esp("aes128-sha256")], vec![esp("aes128-sha256-esn")], TransformType::ESN),
            // we require PFS, the peer offers none; the peer requires PFS, we have none
            (vec![esp("aes128gcm16")], vec![esp("aes128gcm16-ecp256")], TransformType::KE),
            (vec![esp("aes128gcm16-ecp256")], vec![esp("aes128gcm16")], TransformType::KE),
            (vec![esp("aes128gcm16-ecp384")], vec![esp("aes128gcm16-ecp256")], TransformType::KE),
            // IKE: "none" is no KE method
            (
                vec![ike("aes128gcm16-prfsha256-none")],
                vec![ike("aes128gcm16-prfsha256-none")],
                TransformType::KE,
            ),
            (
                vec![ike("aes128gcm16-prfsha1-ecp256")],
                vec![ike("aes128gcm16-prfsha256-ecp256")],
                TransformType::PRF,
            ),
        ];
        for (i, (offered, configured, ty)) in rows.into_iter().enumerate() {
            let got = chosen(&offered, &configured, C);
            assert!(no_common(ty)(&got), "row {i}: {got:?}");
        }
    }

    #[test]
    fn ike_prf_is_implied_by_integ() {
        let configured = [ike("aes128-sha256-sha1-modp2048")];
        assert_eq!(configured[0].to_string(), "aes128-sha256-sha1-prfsha256-prfsha1-modp2048");
        let offered = offer(&[ike("aes128-sha1-prfsha1-modp2048")]);
        let sel = select(&offered, &configured, Preference::Configured).unwrap();
        assert_eq!(
            Lists::from_wire(&sel.to_wire(vec![])).to_string(),
            "aes128-sha1-prfsha1-modp2048"
        );
    }

    #[test]
    fn aes_without_key_length_matches_no_sized_aes() {
        let mut offered = offer(&[esp("aes128-sha256")]);
        nth(&mut offered, 0).transforms.first_mut().unwrap().attributes.clear();
        let err = select(&offered, &[esp("aes128-sha256")], Preference::Configured).unwrap_err();
        assert_eq!(err.closest.unwrap().reason, MissReason::NoCommon(TransformType::ENCR));
    }

    #[test]
    fn esp_offer_without_esn_means_noesn_and_echoes_none() {
        let mut offered = offer(&[esp("aes128gcm16")]);
        nth(&mut offered, 0).transforms.retain(|t| t.ty != TransformType::ESN);
        let sel = select(&offered, &[esp("aes128gcm16")], Preference::Configured).unwrap();
        assert_eq!(sel.transforms, vec![Transform::encr(EncrId::ENCR_AES_GCM_16, Some(128))]);
        let Suite::Esp(child) = sel.suite else { panic!("not ESP") };
        assert_eq!(
            child,
            ChildSuite {
                esp: EspSuite {
                    encr: EncrId::ENCR_AES_GCM_16,
                    encr_key_bits: 128,
                    integ: IntegId::NONE,
                },
                esn: false,
                ke: None,
            }
        );
    }

    #[test]
    fn unknown_transforms_are_skipped() {
        let mut offered = offer(&[esp("aes256-sha256"), esp("aes128-sha256")]);
        // Unknown IDs and a transform with an unknown attribute are skipped within a proposal.
        nth(&mut offered, 1).transforms.insert(0, Transform::encr(EncrId(0x4242), Some(128)));
        nth(&mut offered, 1).transforms.insert(0, Transform::integ(IntegId(0x4242)));
        let mut odd = Transform::encr(EncrId::ENCR_AES_CBC, Some(256));
        odd.attributes.push(Attribute::Tv { ty: AttributeType(99), value: 1 });
        nth(&mut offered, 1).transforms.insert(0, odd);
        // A transform type we do not know makes its whole proposal unacceptable.
        nth(&mut offered, 0).transforms.push(Transform {
            ty: TransformType(200),
            id: 1,
            attributes: vec![],
        });
        let configured = [esp("aes256-aes128-sha256")];
        let sel = select(&offered, &configured, Preference::Configured).unwrap();
        assert_eq!(sel.number, 2);
        assert_eq!(sel.peer_spi, vec![2; 4]);
        assert_eq!(Lists::from_wire(&sel.to_wire(vec![])).to_string(), "aes128-sha256");

        offered.truncate(1);
        let err = select(&offered, &configured, Preference::Configured).unwrap_err();
        assert_eq!(
            err.closest.unwrap().reason,
            MissReason::UnknownTransformType(TransformType(200))
        );
    }

    #[test]
    fn additional_key_exchanges_are_declined_only_where_allowed() {
        let mut offered = offer(&[ike("aes256gcm16-prfsha384-ecp384")]);
        nth(&mut offered, 0).transforms.push(Transform {
            ty: TransformType::ADDKE1,
            id: 36,
            attributes: vec![],
        });
        let configured = [ike("aes256gcm16-prfsha384-ecp384")];
        let err = select(&offered, &configured, Preference::Configured).unwrap_err();
        assert_eq!(err.closest.unwrap().reason, MissReason::NoCommon(TransformType::ADDKE1));
        nth(&mut offered, 0).transforms.push(Transform {
            ty: TransformType::ADDKE1,
            id: 0,
            attributes: vec![],
        });
        let sel = select(&offered, &configured, Preference::Configured).unwrap();
        assert_eq!(sel.transforms.len(), 3);
    }

    #[test]
    fn protocols_must_agree() {
        let err = select(
            &offer(&[esp("aes128gcm16")]),
            &[ike("aes128gcm16-prfsha256-ecp256")],
            Preference::Configured,
        )
        .unwrap_err();
        assert_eq!(err.closest, None);
    }

    #[test]
    fn display_keywords() {
        assert_eq!(ike("aes256gcm16-prfsha384-ecp384").to_string(), "aes256gcm16-prfsha384-ecp384");
        assert_eq!(esp("aes128-sha256-modp2048-esn").to_string(), "aes128-sha256-modp2048-esn");
        assert_eq!(esp("aes128-sha256-noesn").to_string(), "aes128-sha256");
        assert_eq!(esp("aes128-sha256-esn-noesn").to_string(), "aes128-sha256-esn-noesn");
        assert_eq!(
            ike("chacha20poly1305-aes256ctr-sha512-prfsha512-prfaesxcbc-curve25519-mlkem768")
                .to_string(),
            "chacha20poly1305-aes256ctr-sha512-prfsha512-prfaesxcbc-curve25519-mlkem768"
        );
        assert_eq!(esp("3des-md5-none").to_string(), "3des-md5-none");
        let mut p = ike("aes128-sha1-prfsha1-modp1024").to_wire(1, vec![]);
        p.transforms.push(Transform::encr(EncrId(0x4242), Some(128)));
        p.transforms.push(Transform { ty: TransformType::ADDKE1, id: 36, attributes: vec![] });
        assert_eq!(
            Lists::from_wire(&p).to_string(),
            "aes128-encr16962_128-sha1-prfsha1-modp1024-ke1_mlkem768"
        );
    }

    #[test]
    fn display_no_proposal_chosen() {
        let offered =
            offer(&[ike("aes128-sha1-prfsha1-modp1024"), ike("3des-sha1-prfsha1-modp1024")]);
        let err = select(&offered, &[ike("aes256gcm16-prfsha384-ecp384")], Preference::Configured)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no proposal chosen: peer offered [aes128-sha1-prfsha1-modp1024, \
             3des-sha1-prfsha1-modp1024], we accept [aes256gcm16-prfsha384-ecp384]; \
             closest: peer's #1 vs our #1: no common ENCR"
        );

        let offered =
            offer(&[ike("aes128-sha1-prfsha1-modp1024"), ike("aes256gcm16-prfsha384-modp2048")]);
        let configured =
            [ike("aes256-sha256-prfsha256-ecp256"), ike("aes256gcm16-prfsha384-ecp384")];
        let err = select(&offered, &configured, Preference::Configured).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no proposal chosen: peer offered [aes128-sha1-prfsha1-modp1024, \
             aes256gcm16-prfsha384-modp2048], we accept [aes256-sha256-prfsha256-ecp256, \
             aes256gcm16-prfsha384-ecp384]; closest: peer's #2 vs our #2: no common KE method \
             (ENCR, PRF matched)"
        );
    }

    #[test]
    fn initiator_accepts_a_proper_response() {
        let ours = [
            ike("aes256gcm16-prfsha384-ecp384"),
            ike("aes128-aes256-sha256-prfsha256-ecp256-modp2048"),
        ];
        let response = Proposal {
            number: 2,
            protocol: ProtocolId::IKE,
            spi: vec![],
            transforms: vec![
                Transform::encr(EncrId::ENCR_AES_CBC, Some(256)),
                Transform::integ(IntegId::AUTH_HMAC_SHA2_256_128),
                Transform::prf(PrfId::PRF_HMAC_SHA2_256),
                Transform::ke(KeId::MODP_2048),
            ],
        };
        let sel = check_response(&ours, &response).unwrap();
        assert_eq!(
            sel.suite,
            Suite::Ike(IkeSuite {
                encr: EncrId::ENCR_AES_CBC,
                encr_key_bits: 256,
                prf: PrfId::PRF_HMAC_SHA2_256,
                integ: IntegId::AUTH_HMAC_SHA2_256_128,
                ke: KeId::MODP_2048,
            })
        );

        // What our responder selects, our initiator accepts, for every preference.
        let offered: Vec<Proposal> =
            (1u8..).zip(&ours).map(|(n, s)| s.to_wire(n, vec![])).collect();
        for prefer in [Preference::Configured, Preference::Offered] {
            let sel = select(&offered, &ours[1..], prefer).unwrap();
            let back = check_response(&ours, &sel.to_wire(vec![])).unwrap();
            assert_eq!(back.suite, sel.suite);
        }

        // ESP: PFS declined with "none", ESN echoed.
        let ours = [esp("aes128gcm16-ecp256-none-esn-noesn")];
        let response = Proposal {
            number: 1,
            protocol: ProtocolId::ESP,
            spi: vec![9; 4],
            transforms: vec![
                Transform::encr(EncrId::ENCR_AES_GCM_16, Some(128)),
                Transform::esn(true),
            ],
        };
        let sel = check_response(&ours, &response).unwrap();
        let Suite::Esp(child) = sel.suite else { panic!("not ESP") };
        assert!(child.esn);
        assert_eq!(child.ke, None);
    }

    #[test]
    fn initiator_rejects_bad_responses() {
        let ours = [esp("aes128-aes256-sha256-ecp256")];
        let good = || Proposal {
            number: 1,
            protocol: ProtocolId::ESP,
            spi: vec![9; 4],
            transforms: vec![
                Transform::encr(EncrId::ENCR_AES_CBC, Some(128)),
                Transform::integ(IntegId::AUTH_HMAC_SHA2_256_128),
                Transform::ke(KeId::ECP_256),
                Transform::esn(false),
            ],
        };
        check_response(&ours, &good()).unwrap();

        let mut two = good();
        two.transforms.push(Transform::encr(EncrId::ENCR_AES_CBC, Some(256)));
        let err = check_response(&ours, &two).unwrap_err();
        assert_eq!(
            err.to_string(),
            "peer chose more than one ENCR transform (aes128, aes256), must choose one"
        );

        let mut never = good();
        *never.transforms.get_mut(0).unwrap() = Transform::encr(EncrId::ENCR_AES_CBC, Some(192));
        let err = check_response(&ours, &never).unwrap_err();
        assert_eq!(
            err.to_string(),
            "peer chose ENCR aes192, which we did not offer in #1 (aes128-aes256-sha256-ecp256)"
        );

        let mut missing = good();
        missing.transforms.retain(|t| t.ty != TransformType::KE);
        let err = check_response(&ours, &missing).unwrap_err();
        assert_eq!(
            err.to_string(),
            "peer chose no KE transform in #1 (aes128-aes256-sha256-ecp256)"
        );

        let mut esn = good();
        *esn.transforms.get_mut(3).unwrap() = Transform::esn(true);
        assert!(matches!(
            check_response(&ours, &esn),
            Err(BadResponse::NotOffered { ty: TransformType::ESN, .. })
        ));

        let mut number = good();
        number.number = 2;
        assert_eq!(
            check_response(&ours, &number).unwrap_err(),
            BadResponse::UnknownNumber { number: 2, offered: 1 }
        );

        let mut protocol = good();
        protocol.protocol = ProtocolId::AH;
        assert!(matches!(check_response(&ours, &protocol), Err(BadResponse::Protocol { .. })));
    }

    fn arb_transform() -> impl Strategy<Value = Transform> {
        (
            prop_oneof![1u8..=6, any::<u8>()],
            prop_oneof![0u16..40, any::<u16>()],
            proptest::option::of(prop_oneof![Just(128u16), Just(256), any::<u16>()]),
            proptest::bool::weighted(0.1),
        )
            .prop_map(|(ty, id, bits, odd)| {
                let mut t = Transform { ty: TransformType(ty), id, attributes: Vec::new() };
                if let Some(bits) = bits {
                    t.attributes.push(Attribute::Tv { ty: AttributeType::KEY_LENGTH, value: bits });
                }
                if odd {
                    t.attributes.push(Attribute::Tlv { ty: AttributeType(7), value: vec![1] });
                }
                t
            })
    }

    fn arb_proposal() -> impl Strategy<Value = Proposal> {
        (any::<u8>(), 0u8..5, proptest::collection::vec(arb_transform(), 0..12)).prop_map(
            |(number, protocol, transforms)| Proposal {
                number,
                protocol: ProtocolId(protocol),
                spi: vec![],
                transforms,
            },
        )
    }

    proptest! {
        #[test]
        fn select_never_panics(offered in proptest::collection::vec(arb_proposal(), 0..6)) {
            let configured = [
                ike("aes256gcm16-aes128-sha256-prfsha256-ecp256-modp2048"),
                esp("aes128gcm16-aes256-sha256-ecp256-none-esn-noesn"),
                esp("aes128-sha1"),
            ];
            // Unique numbers, so the chosen offer can be found again below.
            let offered: Vec<Proposal> = offered
                .into_iter()
                .zip(1u8..)
                .map(|(p, number)| Proposal { number, ..p })
                .collect();
            for prefer in [Preference::Configured, Preference::Offered] {
                match select(&offered, &configured, prefer) {
                    Ok(sel) => {
                        // The answer is one transform per type, all from the chosen offer.
                        let wire = sel.to_wire(vec![]);
                        let offer = offered.iter().find(|p| p.number == sel.number).unwrap();
                        for t in &wire.transforms {
                            prop_assert!(offer.transforms.iter().any(|o| o.ty == t.ty && o.id == t.id));
                        }
                        let mut types: Vec<_> = wire.transforms.iter().map(|t| t.ty).collect();
                        types.dedup();
                        prop_assert_eq!(types.len(), wire.transforms.len());
                        let _ = check_response(&configured, &wire);
                    }
                    Err(e) => {
                        let _ = e.to_string();
                    }
                }
                for p in &offered {
                    let _ = check_response(&configured, p).map_err(|e| e.to_string());
                }
            }
        }
    }
}
