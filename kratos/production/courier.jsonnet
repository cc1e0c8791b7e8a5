// The HTTP courier's body: the message Kratos would have mailed, for the
// integration tests' receiver (they read the recovery code from it).
function(ctx) {
  recipient: ctx.recipient,
  template_type: ctx.template_type,
  subject: ctx.subject,
  recovery_code:
    if std.objectHas(ctx, 'template_data') && std.isObject(ctx.template_data)
       && std.objectHas(ctx.template_data, 'recovery_code')
    then ctx.template_data.recovery_code
    else null,
}
