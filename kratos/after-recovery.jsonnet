// Body of Kratos's after-recovery web_hook to kratos-passkeys
// (POST /hooks/kratos/after-recovery on its admin listener).
//
// kratos-passkeys answers it at once for the recovery flows it created to
// sign someone in with a passkey, and for every other recovery (the
// person's own, or a code support created) it forwards `notify` to your
// notifier and, when configured, signs the person out everywhere else.
//
// `notify` is what your notifier receives: put the body your existing
// after-recovery web_hook renders here, unchanged.
function(ctx) {
  flow_id: ctx.flow.id,
  identity_id: ctx.identity.id,
  // Set only on the flows kratos-passkeys submits; checked there, never here.
  passkey_login:
    if std.objectHas(ctx.flow, 'transient_payload')
       && std.isObject(ctx.flow.transient_payload)
       && std.objectHas(ctx.flow.transient_payload, 'kratos_passkeys_login')
    then ctx.flow.transient_payload.kratos_passkeys_login
    else null,
  notify: {
    event: 'account_recovered',
    identity_id: ctx.identity.id,
    email: ctx.identity.traits.email,
    recovery_flow_id: ctx.flow.id,
    request_url: ctx.flow.request_url,
  },
}
