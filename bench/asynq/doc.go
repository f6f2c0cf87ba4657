// Package asynqbench runs callbackd's promise store and hibiken/asynq side by side on the same
// redis-server, in interleaved rounds, and prints the ratios. It is a module of its own so that
// callbackd itself never depends on asynq: run it with `cd bench/asynq && go test -run '^$'
// -bench . -benchtime 1x`.
package asynqbench
