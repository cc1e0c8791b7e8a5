// Body of Kratos's after-registration web_hook to kratos-passkeys.
function(ctx) {
  identity_id: ctx.identity.id,
  traits: ctx.identity.traits,
}
