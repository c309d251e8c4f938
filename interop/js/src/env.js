// The environment a runner gives a node (docs/node-contract.md, "Environment").

export function readEnv (env = process.env) {
  const controlAddr = env.TESTBED_CONTROL_ADDR ?? ''
  if (controlAddr === '') {
    throw new Error('TESTBED_CONTROL_ADDR is not set (tcp://HOST:PORT or unix:/PATH); this program is launched by the orchestrator')
  }
  let name = 'TESTBED_NODE_INDEX'
  let text = env.TESTBED_NODE_INDEX ?? ''
  if (text === '') {
    name = 'JOB_COMPLETION_INDEX'
    text = env.JOB_COMPLETION_INDEX ?? ''
  }
  if (text === '') throw new Error('TESTBED_NODE_INDEX (or JOB_COMPLETION_INDEX) is not set')
  if (!/^\d+$/.test(text) || Number(text) > 0xFFFFFFFF) {
    throw new Error(`${name}="${text}" is not a node index (0, 1, 2, …)`)
  }
  return {
    controlAddr,
    index: Number(text),
    runId: env.TESTBED_RUN_ID ?? '',
    listenIp: env.TESTBED_LISTEN_IP || '127.0.0.1',
    // Sent in hello only, never logged: the orchestrator drops a hello without it.
    secret: env.TESTBED_RUN_SECRET ?? ''
  }
}
