//! IANA "Internet Key Exchange Version 2 (IKEv2) Parameters" registries used by the IKEv2 wire
//! format (RFC 7296 §3). Same newtype shape as [`crate::wire::registry`]: unknown values are
//! kept, so a round trip loses nothing and the caller decides what "unknown" means.

use crate::wire::registry::registry;

registry! {
    /// Exchange type in the IKE header (RFC 7296 §3.1).
    pub struct ExchangeType(u8) {
        /// IKE_SA_INIT (RFC 7296 §1.2).
        IKE_SA_INIT = 34,
        /// IKE_AUTH (RFC 7296 §1.2).
        IKE_AUTH = 35,
        /// CREATE_CHILD_SA (RFC 7296 §1.3).
        CREATE_CHILD_SA = 36,
        /// INFORMATIONAL (RFC 7296 §1.4).
        INFORMATIONAL = 37,
        /// IKE_SESSION_RESUME (RFC 5723).
        IKE_SESSION_RESUME = 38,
        /// IKE_INTERMEDIATE (RFC 9242).
        IKE_INTERMEDIATE = 43,
        /// IKE_FOLLOWUP_KE (RFC 9370).
        IKE_FOLLOWUP_KE = 44,
    }
}

registry! {
    /// Payload type, in the IKE header's and every generic payload header's Next Payload field
    /// (RFC 7296 §3.2).
    pub struct PayloadType(u8) {
        /// No Next Payload: the end of the chain.
        NONE = 0,
        /// Security Association (§3.3).
        SA = 33,
        /// Key Exchange (§3.4).
        KE = 34,
        /// Identification - Initiator (§3.5).
        IDI = 35,
        /// Identification - Responder (§3.5).
        IDR = 36,
        /// Certificate (§3.6).
        CERT = 37,
        /// Certificate Request (§3.7).
        CERTREQ = 38,
        /// Authentication (§3.8).
        AUTH = 39,
        /// Nonce (§3.9).
        NONCE = 40,
        /// Notify (§3.10).
        NOTIFY = 41,
        /// Delete (§3.11).
        DELETE = 42,
        /// Vendor ID (§3.12).
        VENDOR_ID = 43,
        /// Traffic Selector - Initiator (§3.13).
        TSI = 44,
        /// Traffic Selector - Responder (§3.13).
        TSR = 45,
        /// Encrypted and Authenticated (§3.14).
        SK = 46,
        /// Configuration (§3.15).
        CP = 47,
        /// Extensible Authentication (§3.16).
        EAP = 48,
        /// Encrypted and Authenticated Fragment (RFC 7383 §2.5).
        SKF = 53,
    }
}

registry! {
    /// Notify message type (RFC 7296 §3.10.1 and later RFCs). Values below 16384 are errors,
    /// the rest status types.
    pub struct NotifyType(u16) {
        /// A critical payload type was not understood (§3.10.1).
        UNSUPPORTED_CRITICAL_PAYLOAD = 1,
        /// A message arrived for an unknown IKE SA.
        INVALID_IKE_SPI = 4,
        /// The major version is not supported.
        INVALID_MAJOR_VERSION = 5,
        /// The message is malformed.
        INVALID_SYNTAX = 7,
        /// The message ID is outside the window.
        INVALID_MESSAGE_ID = 9,
        /// An ESP or AH packet arrived for an unknown SPI.
        INVALID_SPI = 11,
        /// None of the proposals was acceptable.
        NO_PROPOSAL_CHOSEN = 14,
        /// The KE payload's group is not the selected one.
        INVALID_KE_PAYLOAD = 17,
        /// Authentication failed.
        AUTHENTICATION_FAILED = 24,
        /// Only one pair of traffic selectors is acceptable.
        SINGLE_PAIR_REQUIRED = 34,
        /// No more Child SAs are accepted on this IKE SA.
        NO_ADDITIONAL_SAS = 35,
        /// No internal address could be assigned.
        INTERNAL_ADDRESS_FAILURE = 36,
        /// A CP payload was required but not sent.
        FAILED_CP_REQUIRED = 37,
        /// The traffic selectors are not acceptable.
        TS_UNACCEPTABLE = 38,
        /// The packet's selectors do not match the SA's.
        INVALID_SELECTORS = 39,
        /// MOBIKE: the addresses are unacceptable (RFC 4555).
        UNACCEPTABLE_ADDRESSES = 40,
        /// MOBIKE: a NAT was detected where none is allowed (RFC 4555).
        UNEXPECTED_NAT_DETECTED = 41,
        /// Mobile IPv6 home address (RFC 5026).
        USE_ASSIGNED_HOA = 42,
        /// Try again later (a rekey collision, §2.25).
        TEMPORARY_FAILURE = 43,
        /// The Child SA to rekey or delete does not exist (§2.25).
        CHILD_SA_NOT_FOUND = 44,
        /// Invalid group ID (G-IKEv2).
        INVALID_GROUP_ID = 45,
        /// Authorization failed (G-IKEv2).
        AUTHORIZATION_FAILED = 46,
        /// IKE_FOLLOWUP_KE state not found (RFC 9370).
        STATE_NOT_FOUND = 47,
        /// The sender has no state for this peer (§2.4).
        INITIAL_CONTACT = 16384,
        /// Window size for concurrent requests (§2.3).
        SET_WINDOW_SIZE = 16385,
        /// More traffic selectors could be negotiated (§2.9).
        ADDITIONAL_TS_POSSIBLE = 16386,
        /// IPComp is supported (§2.22).
        IPCOMP_SUPPORTED = 16387,
        /// Hash of the sender's address and port (§2.23).
        NAT_DETECTION_SOURCE_IP = 16388,
        /// Hash of the recipient's address and port (§2.23).
        NAT_DETECTION_DESTINATION_IP = 16389,
        /// Stateless cookie (§2.6).
        COOKIE = 16390,
        /// Transport mode is requested (§1.3.1).
        USE_TRANSPORT_MODE = 16391,
        /// Hash-and-URL certificates are supported (§3.6).
        HTTP_CERT_LOOKUP_SUPPORTED = 16392,
        /// The Child SA being rekeyed (§1.3.3).
        REKEY_SA = 16393,
        /// TFC padding is not supported (§1.3.1).
        ESP_TFC_PADDING_NOT_SUPPORTED = 16394,
        /// Non-first fragments are also sent on this SA (§1.3.1).
        NON_FIRST_FRAGMENTS_ALSO = 16395,
        /// MOBIKE is supported (RFC 4555).
        MOBIKE_SUPPORTED = 16396,
        /// MOBIKE: an additional IPv4 address (RFC 4555).
        ADDITIONAL_IP4_ADDRESS = 16397,
        /// MOBIKE: an additional IPv6 address (RFC 4555).
        ADDITIONAL_IP6_ADDRESS = 16398,
        /// MOBIKE: no additional addresses (RFC 4555).
        NO_ADDITIONAL_ADDRESSES = 16399,
        /// MOBIKE: update the SA's addresses (RFC 4555).
        UPDATE_SA_ADDRESSES = 16400,
        /// MOBIKE: return routability check (RFC 4555).
        COOKIE2 = 16401,
        /// MOBIKE: NATs are not allowed (RFC 4555).
        NO_NATS_ALLOWED = 16402,
        /// Reauthentication lifetime (RFC 4478).
        AUTH_LIFETIME = 16403,
        /// Multiple authentication exchanges are supported (RFC 4739).
        MULTIPLE_AUTH_SUPPORTED = 16404,
        /// Another authentication exchange follows (RFC 4739).
        ANOTHER_AUTH_FOLLOWS = 16405,
        /// Redirect is supported (RFC 5685).
        REDIRECT_SUPPORTED = 16406,
        /// Redirect to another gateway (RFC 5685).
        REDIRECT = 16407,
        /// Redirected from a gateway (RFC 5685).
        REDIRECTED_FROM = 16408,
        /// EAP-only authentication (RFC 5998).
        EAP_ONLY_AUTHENTICATION = 16417,
        /// Childless IKE SA initiation (RFC 6023).
        CHILDLESS_IKEV2_SUPPORTED = 16418,
        /// IKE fragmentation is supported (RFC 7383).
        IKEV2_FRAGMENTATION_SUPPORTED = 16430,
        /// Hash algorithms for digital signatures (RFC 7427).
        SIGNATURE_HASH_ALGORITHMS = 16431,
        /// IKE SA cloning is supported (RFC 7791).
        CLONE_IKE_SA_SUPPORTED = 16432,
        /// Clone the IKE SA (RFC 7791).
        CLONE_IKE_SA = 16433,
        /// Client puzzle (RFC 8019).
        PUZZLE = 16434,
        /// Use a post-quantum preshared key (RFC 8784).
        USE_PPK = 16435,
        /// PPK identity (RFC 8784).
        PPK_IDENTITY = 16436,
        /// AUTH computed without the PPK (RFC 8784).
        NO_PPK_AUTH = 16437,
        /// IKE_INTERMEDIATE is supported (RFC 9242).
        INTERMEDIATE_EXCHANGE_SUPPORTED = 16438,
        /// IPv4 internal addresses are allowed (RFC 8983).
        IP4_ALLOWED = 16439,
        /// IPv6 internal addresses are allowed (RFC 8983).
        IP6_ALLOWED = 16440,
        /// Additional key exchange (RFC 9370).
        ADDITIONAL_KEY_EXCHANGE = 16441,
        /// Use IP-TFS aggregation and fragmentation (RFC 9347).
        USE_AGGFRAG = 16442,
    }
}

impl NotifyType {
    /// Whether this is an error type (below 16384, RFC 7296 §3.10.1).
    pub const fn is_error(self) -> bool {
        self.0 < 16384
    }
}

registry! {
    /// Security protocol identifier in SA proposals, Notify and Delete payloads (§3.3.1).
    pub struct ProtocolId(u8) {
        /// No protocol: a Notify without an SPI sends 0 here (§3.10).
        NONE = 0,
        /// IKE.
        IKE = 1,
        /// Authentication Header.
        AH = 2,
        /// Encapsulating Security Payload.
        ESP = 3,
    }
}

registry! {
    /// Transform type in an SA proposal (§3.3.2, RFC 9370).
    pub struct TransformType(u8) {
        /// Encryption algorithm ([`crate::wire::EncrId`]).
        ENCR = 1,
        /// Pseudorandom function ([`crate::wire::PrfId`]).
        PRF = 2,
        /// Integrity algorithm ([`crate::wire::IntegId`]).
        INTEG = 3,
        /// Key exchange method ([`crate::wire::KeId`]), formerly "Diffie-Hellman group".
        KE = 4,
        /// Extended sequence numbers: 0 no, 1 yes.
        ESN = 5,
        /// Additional key exchange 1 (RFC 9370).
        ADDKE1 = 6,
        /// Additional key exchange 2 (RFC 9370).
        ADDKE2 = 7,
        /// Additional key exchange 3 (RFC 9370).
        ADDKE3 = 8,
        /// Additional key exchange 4 (RFC 9370).
        ADDKE4 = 9,
        /// Additional key exchange 5 (RFC 9370).
        ADDKE5 = 10,
        /// Additional key exchange 6 (RFC 9370).
        ADDKE6 = 11,
        /// Additional key exchange 7 (RFC 9370).
        ADDKE7 = 12,
    }
}

registry! {
    /// Transform attribute type (§3.3.5).
    pub struct AttributeType(u16) {
        /// Key length in bits, TV format.
        KEY_LENGTH = 14,
    }
}

registry! {
    /// Identification type (§3.5).
    pub struct IdType(u8) {
        /// A single four-octet IPv4 address.
        ID_IPV4_ADDR = 1,
        /// A fully qualified domain name.
        ID_FQDN = 2,
        /// An RFC 822 email address.
        ID_RFC822_ADDR = 3,
        /// A single sixteen-octet IPv6 address.
        ID_IPV6_ADDR = 5,
        /// The DER encoding of an ASN.1 X.500 Distinguished Name.
        ID_DER_ASN1_DN = 9,
        /// The DER encoding of an ASN.1 X.509 GeneralName.
        ID_DER_ASN1_GN = 10,
        /// An opaque octet stream.
        ID_KEY_ID = 11,
        /// No identity (RFC 7619).
        ID_NULL = 13,
    }
}

registry! {
    /// Authentication method (§3.8, RFC 4754, RFC 7427).
    pub struct AuthMethod(u8) {
        /// RSASSA-PKCS1-v1_5 signature.
        RSA_DIGITAL_SIGNATURE = 1,
        /// Shared key message integrity code (PSK).
        SHARED_KEY_MESSAGE_INTEGRITY_CODE = 2,
        /// DSS signature.
        DSS_DIGITAL_SIGNATURE = 3,
        /// ECDSA with SHA-256 on P-256 (RFC 4754).
        ECDSA_SHA256_P256 = 9,
        /// ECDSA with SHA-384 on P-384 (RFC 4754).
        ECDSA_SHA384_P384 = 10,
        /// ECDSA with SHA-512 on P-521 (RFC 4754).
        ECDSA_SHA512_P521 = 11,
        /// Generic secure password authentication (RFC 6467).
        GENERIC_SECURE_PASSWORD = 12,
        /// NULL authentication (RFC 7619).
        NULL_AUTH = 13,
        /// Digital signature with an AlgorithmIdentifier (RFC 7427).
        DIGITAL_SIGNATURE = 14,
    }
}

registry! {
    /// Traffic selector type (§3.13.1).
    pub struct TsType(u8) {
        /// IPv4 address range.
        TS_IPV4_ADDR_RANGE = 7,
        /// IPv6 address range.
        TS_IPV6_ADDR_RANGE = 8,
    }
}

registry! {
    /// Certificate encoding in CERT and CERTREQ payloads (§3.6).
    pub struct CertEncoding(u8) {
        /// PKCS #7 wrapped X.509 certificate.
        PKCS7_X509_CERTIFICATE = 1,
        /// PGP certificate.
        PGP_CERTIFICATE = 2,
        /// DNS signed key.
        DNS_SIGNED_KEY = 3,
        /// X.509 certificate - signature.
        X509_CERTIFICATE_SIGNATURE = 4,
        /// Kerberos token.
        KERBEROS_TOKEN = 6,
        /// Certificate revocation list.
        CERTIFICATE_REVOCATION_LIST = 7,
        /// Authority revocation list.
        AUTHORITY_REVOCATION_LIST = 8,
        /// SPKI certificate.
        SPKI_CERTIFICATE = 9,
        /// X.509 certificate - attribute.
        X509_CERTIFICATE_ATTRIBUTE = 10,
        /// Raw RSA key (deprecated).
        RAW_RSA_KEY = 11,
        /// Hash and URL of an X.509 certificate.
        HASH_AND_URL_X509_CERTIFICATE = 12,
        /// Hash and URL of an X.509 bundle.
        HASH_AND_URL_X509_BUNDLE = 13,
        /// Raw public key (RFC 7670).
        RAW_PUBLIC_KEY = 15,
    }
}

registry! {
    /// Configuration payload type (§3.15).
    pub struct CfgType(u8) {
        /// Request.
        CFG_REQUEST = 1,
        /// Reply.
        CFG_REPLY = 2,
        /// Set.
        CFG_SET = 3,
        /// Acknowledgement.
        CFG_ACK = 4,
    }
}

registry! {
    /// Configuration attribute type (§3.15.1).
    pub struct CfgAttributeType(u16) {
        /// Internal IPv4 address.
        INTERNAL_IP4_ADDRESS = 1,
        /// Internal IPv4 netmask.
        INTERNAL_IP4_NETMASK = 2,
        /// Internal IPv4 DNS server.
        INTERNAL_IP4_DNS = 3,
        /// Internal IPv4 NetBIOS name server.
        INTERNAL_IP4_NBNS = 4,
        /// Internal IPv4 DHCP server.
        INTERNAL_IP4_DHCP = 6,
        /// Application version string.
        APPLICATION_VERSION = 7,
        /// Internal IPv6 address and prefix length.
        INTERNAL_IP6_ADDRESS = 8,
        /// Internal IPv6 DNS server.
        INTERNAL_IP6_DNS = 10,
        /// Internal IPv6 DHCP server.
        INTERNAL_IP6_DHCP = 12,
        /// Internal IPv4 subnet.
        INTERNAL_IP4_SUBNET = 13,
        /// List of supported attribute types.
        SUPPORTED_ATTRIBUTES = 14,
        /// Internal IPv6 subnet.
        INTERNAL_IP6_SUBNET = 15,
    }
}
