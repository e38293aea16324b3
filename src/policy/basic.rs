//! The requirements that look at no signature: `insecureAcceptAnything`, `reject`, and
//! `signedBaseLayer` (which containers/image does not implement either, and so rejects), as
//! containers/image's `policy_eval_simple.go` and `policy_eval_baselayer.go` judge them.

use super::requirement::Context;

/// `insecureAcceptAnything`: satisfied.
pub(crate) fn insecure_accept_anything() -> (bool, String) {
    (true, "accepts any image".to_string())
}

/// `reject`: not satisfied, in containers/image's words.
pub(crate) fn reject(ctx: &Context<'_>) -> (bool, String) {
    (
        false,
        format!("Running image {} is rejected by policy.", ctx.image),
    )
}

/// `signedBaseLayer`: not implemented by containers/image, so never satisfied.
pub(crate) fn signed_base_layer() -> (bool, String) {
    (false, "signedBaseLayer not implemented yet!".to_string())
}
