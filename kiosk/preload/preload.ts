// The kiosk's preload (sandboxed, context-isolated): exposes window.kiosk, one function per user action
// and an event subscription, never ipcRenderer itself. Main checks every argument and the sender again.
import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';
import { ACTIONS, IPC_EVENT, IPC_PREFIX, type KioskEvent } from '../shared/api.js';

const bridge: Record<string, unknown> = {};
for (const action of ACTIONS) {
  bridge[action] = (arg?: unknown): Promise<unknown> => ipcRenderer.invoke(`${IPC_PREFIX}${action}`, arg);
}
bridge['onEvent'] = (listener: (event: KioskEvent) => void): void => {
  ipcRenderer.on(IPC_EVENT, (_event: IpcRendererEvent, payload: KioskEvent) => listener(payload));
};

contextBridge.exposeInMainWorld('kiosk', bridge);
