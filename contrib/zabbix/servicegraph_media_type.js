// servicegraph webhook media type for Zabbix 6.0+ (Administration > Media types > Webhook).
//
// Parameters (name = value):
//   url        = https://servicegraph.example.com/api/v1/webhooks/zabbix
//   token      = <the token set in SERVICEGRAPH_INGEST_TOKENS__ZABBIX>
//   event_id   = {EVENT.ID}
//   recovery_id= {EVENT.RECOVERY.ID}
//   status     = {EVENT.STATUS}            (PROBLEM or RESOLVED)
//   name       = {EVENT.NAME}
//   severity   = {EVENT.SEVERITY}
//   host       = {HOST.HOST}
//   host_ip    = {HOST.IP}
//   trigger_id = {TRIGGER.ID}
//   time       = {EVENT.DATE}T{EVENT.TIME}  (or {EVENT.RECOVERY.DATE}T{EVENT.RECOVERY.TIME})
//   message    = {ALERT.MESSAGE}
//   tags       = {EVENT.TAGSJSON}
//
// servicegraph stores the event durably before it answers 202; any other answer makes
// this script throw, so that Zabbix retries the delivery.
var params = JSON.parse(value);

function text(name) {
    var v = params[name];
    if (v === undefined || v === null) return '';
    v = String(v);
    // An unexpanded macro such as {EVENT.RECOVERY.ID} on a problem event means "empty".
    return /^\{[A-Z0-9._]+\}$/.test(v) ? '' : v;
}

var body = {
    event_id: text('event_id'),
    recovery_id: text('recovery_id'),
    status: text('status') || 'PROBLEM',
    name: text('name'),
    severity: text('severity') || 'Warning',
    host: text('host'),
    host_ip: text('host_ip'),
    trigger_id: text('trigger_id'),
    message: text('message'),
    tags: []
};

var time = text('time');
if (time) {
    // Zabbix prints 2026.11.26T12:00:00 in the server's time zone; send it as local time.
    body.time = time.replace(/^(\d{4})\.(\d{2})\.(\d{2})/, '$1-$2-$3');
}

var tags = text('tags');
if (tags) {
    try {
        body.tags = JSON.parse(tags);
    } catch (e) {
        Zabbix.log(3, '[servicegraph] ignoring tags that are not JSON: ' + e);
    }
}

var request = new HttpRequest();
request.addHeader('Content-Type: application/json');
request.addHeader('Authorization: Bearer ' + text('token'));
var response = request.post(text('url'), JSON.stringify(body));
var status = request.getStatus();
if (status !== 202) {
    throw 'servicegraph answered ' + status + ': ' + response;
}
return 'OK';
