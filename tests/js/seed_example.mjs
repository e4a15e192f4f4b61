// The seed guide's JavaScript / Node.js example, as written there, except that the base URL
// and the model come from the environment so the test can point it at a proxy on a free port.
import OpenAI from 'openai';

const client = new OpenAI({
  baseURL: process.env.LLMPROXY_BASE_URL ?? 'http://localhost:4000/v1',
  apiKey: process.env.LITELLM_MASTER_KEY,
});

const response = await client.chat.completions.create({
  model: process.env.LLMPROXY_MODEL ?? 'claude-opus',
  messages: [{role: 'user', content: 'Hello!'}],
});

console.log(response.choices[0].message.content);

// The same request streamed, as coding agents send it.
const stream = await client.chat.completions.create({
  model: process.env.LLMPROXY_MODEL ?? 'claude-opus',
  messages: [{role: 'user', content: 'Hello!'}],
  stream: true,
});
let streamed = '';
for await (const chunk of stream) {
  streamed += chunk.choices[0]?.delta?.content ?? '';
}
console.log(`STREAMED: ${streamed}`);
