// Package demo is callbackd's demo: the daemon, built as `callbackd run` builds it, on a fake
// Asterisk with a morning's scripted calls and phones, printing what it does.
package demo

// ConfigYAML is the configuration the demo daemon runs with; the Asterisk URL is filled in
// with the fake's address. It is an ordinary config file: `config check` accepts it.
// Calling hours are open all day so the demo works whenever it is run.
const ConfigYAML = `
asterisk:
  - name: fake-pbx
    url: http://127.0.0.1:1/ari
    username: callbackd
    password: callbackd-secret
detector:
  default_queue: reception
queues:
  - name: reception
    deadline: {voicemail: 4h, unanswered_transfer: 10m}
    max_attempts: 3
    retry_backoff: 2m
    calling_hours: {timezone: Europe/Amsterdam, days: [mon, tue, wed, thu, fri, sat, sun], start: "00:00", end: "23:59"}
  - name: support
    deadline: {voicemail: 2h, unanswered_transfer: 1h}
    max_attempts: 3
    retry_backoff: 2m
    calling_hours: {timezone: Europe/Amsterdam, days: [mon, tue, wed, thu, fri, sat, sun], start: "00:00", end: "23:59"}
    owner_preference: 0.5
    greeting: [sound:callbackd-hello-this-is-acme]
    confirm_digit: "1"
    confirm_timeout: 10s
agents:
  - {id: ria, name: Ria (reception), endpoint: PJSIP/1001, extension: "1001", queues: [reception]}
  - {id: bob, name: Bob (support), endpoint: PJSIP/1002, extension: "1002", queues: [support]}
  - {id: anna, name: Anna (support), endpoint: PJSIP/1003, extension: "1003", queues: [support]}
dialer:
  customer_dial_template: PJSIP/{number}@provider
  caller_id: {number: "+31205550100", name: Acme}
  allow: ['\+31[1-9][0-9]{8}']
  agent_ring_timeout: 15s
  customer_ring_timeout: 25s
  agent_cooldown: 5m
  wrap_up: 20s
  lease: 30s
  shutdown_grace: 10s
`
