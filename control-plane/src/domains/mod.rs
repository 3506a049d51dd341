//! Custom domains (API §8): a tenant claims a host name, proves it controls it with a DNS TXT
//! record or an HTTP token, and from then on the gateway maps requests for that Host to the
//! tenant. Only verified domains enter the snapshot; the data plane refuses an API key of
//! another tenant on such a host. A domain may carry a TLS certificate, which the proxy's
//! HTTPS listener serves for it by SNI while the domain is verified.

mod certificate;
mod model;
mod routes;
mod verify;

pub use certificate::{
    for_snapshot as certificates_for_snapshot, remove_for_tenant as remove_certificates_of_tenant,
    CertificateUpload, CertificateView,
};

pub use model::{
    covers, Domain, DomainCreate, DomainStatus, DomainUpdate, Verification, VerificationMethod,
};
pub use routes::routes;
