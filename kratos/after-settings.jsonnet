// Body of Kratos's after-settings web_hook (profile method) to
// kratos-passkeys: the identity's traits as the person left them.
function(ctx) {
  identity_id: ctx.identity.id,
  traits: ctx.identity.traits,
}
