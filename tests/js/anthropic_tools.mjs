// The official openai package against an Anthropic-backed group of config.example.yaml:
// a plain answer, a streamed one, and a full tool round trip (call -> result -> answer),
// streamed and not. Prints one JSON line per step for the test to check.
import OpenAI from 'openai';

const client = new OpenAI({
  baseURL: process.env.LLMPROXY_BASE_URL,
  apiKey: process.env.LITELLM_MASTER_KEY,
  maxRetries: 0,
});
const model = process.env.LLMPROXY_MODEL;
const tools = [{
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather for a city',
    parameters: {type: 'object', properties: {city: {type: 'string'}}, required: ['city']},
  },
}];
const out = (step, value) => console.log(JSON.stringify({step, ...value}));

const plain = await client.chat.completions.create({
  model, messages: [{role: 'system', content: 'Be brief.'}, {role: 'user', content: 'Hello!'}],
});
out('plain', {text: plain.choices[0].message.content, finish: plain.choices[0].finish_reason,
              usage: plain.usage.total_tokens});

let streamed = '';
for await (const chunk of await client.chat.completions.create({
  model, messages: [{role: 'user', content: 'Hello!'}], stream: true,
})) {
  streamed += chunk.choices[0]?.delta?.content ?? '';
}
out('stream', {text: streamed});

const ask = [{role: 'user', content: 'What is the weather in Paris?'}];
const call = await client.chat.completions.create({model, messages: ask, tools});
const toolCall = call.choices[0].message.tool_calls[0];
out('tool_call', {name: toolCall.function.name, args: JSON.parse(toolCall.function.arguments),
                  finish: call.choices[0].finish_reason});

const followUp = [...ask, call.choices[0].message,
  {role: 'tool', tool_call_id: toolCall.id, content: '18 C and sunny'}];
const answer = await client.chat.completions.create({model, messages: followUp, tools});
out('tool_answer', {text: answer.choices[0].message.content});

const streamedCall = {name: '', args: ''};
// Worded differently from `ask`: the example config caches answers, and this should reach
// the upstream's stream rather than replay the cached tool call.
const askStreamed = [{role: 'user', content: 'And the weather in Paris right now?'}];
for await (const chunk of await client.chat.completions.create({
  model, messages: askStreamed, tools, stream: true,
})) {
  const delta = chunk.choices[0]?.delta?.tool_calls?.[0];
  if (delta?.function?.name) streamedCall.name += delta.function.name;
  if (delta?.function?.arguments) streamedCall.args += delta.function.arguments;
}
out('tool_call_stream', {name: streamedCall.name, args: JSON.parse(streamedCall.args)});
