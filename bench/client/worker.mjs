/** The load generator process: runs the scenarios the orchestrator sends over IPC, one at a time. */
import { serveIpc } from '../lib/proc.mjs';
import * as scenarios from './scenarios.mjs';

serveIpc(scenarios);
